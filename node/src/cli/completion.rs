//! `meshctl completion SHELL`: the shell's completion script for meshctl, from the command
//! line grammar itself (`clap_complete`), so it never lags behind the commands.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

/// What `meshctl completion --help` says after the options.
const INSTALL: &str = "\
Install, for every user:
  bash  meshctl completion bash > /etc/bash_completion.d/meshctl
  zsh   meshctl completion zsh > /usr/local/share/zsh/site-functions/_meshctl
  fish  meshctl completion fish > /etc/fish/completions/meshctl.fish
For yourself only:
  bash  meshctl completion bash > ~/.local/share/bash-completion/completions/meshctl
  zsh   meshctl completion zsh > ~/.zfunc/_meshctl
        (with fpath+=(~/.zfunc); autoload -U compinit; compinit in ~/.zshrc)
  fish  meshctl completion fish > ~/.config/fish/completions/meshctl.fish
In the current shell only:
  bash, zsh  source <(meshctl completion bash)   (or zsh)
  fish       meshctl completion fish | source
Then start a new shell.";

#[derive(Debug, Args)]
#[command(after_long_help = INSTALL, after_help = INSTALL)]
pub struct CompletionArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Writes the script for `shell` to `out`.
pub fn write(shell: Shell, out: &mut dyn std::io::Write) {
    let mut cmd = super::Cli::command();
    clap_complete::generate(shell, &mut cmd, "meshctl", out);
}

/// Prints the script for `args.shell` on stdout.
pub fn run(args: &CompletionArgs) {
    write(args.shell, &mut std::io::stdout().lock());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shell_gets_a_script_naming_the_commands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut out = Vec::new();
            write(shell, &mut out);
            let script = String::from_utf8(out).expect("UTF-8");
            for word in ["meshctl", "apply", "discover", "completion", "version"] {
                assert!(script.contains(word), "{shell}: no {word:?}");
            }
        }
    }
}
