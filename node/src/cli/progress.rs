//! Progress for long commands, on a terminal only: `indicatif` draws on stderr when it is a
//! terminal and the output is a table; otherwise the bars are hidden, so pipes, files and
//! `-o json` get nothing but the result.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::output::Format;

fn visible(fmt: Format) -> bool {
    fmt.is_table() && std::io::stderr().is_terminal()
}

/// A spinner with a message and the time elapsed.
pub fn spinner(fmt: Format) -> ProgressBar {
    if !visible(fmt) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("a valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// A bar of `total` bytes.
pub fn bytes(total: u64, fmt: Format) -> ProgressBar {
    if !visible(fmt) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {msg}")
            .expect("a valid template"),
    );
    bar
}
