//! Who may reach the local API. The Unix socket is the node's control surface: it is created
//! mode 0600 (only meshd's user), or 0660 and owned by `--api-group`, without a moment at
//! which it is open to more (it is bound under a private name and renamed into place). The
//! loopback HTTP listener needs nothing more; an HTTP listener on any other address requires
//! `--http-token FILE`, and then every HTTP request must carry `Authorization: Bearer TOKEN`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use mesh_protocol::api::ErrorBody;
use subtle::ConstantTimeEq;

/// Shortest token accepted: a guessable token would make a remote API an open one.
pub const MIN_TOKEN_BYTES: usize = 16;

/// Binds the API socket at `path`, mode 0600, or 0660 with group `group`. A stale socket
/// (no meshd answers on it) is replaced; a live one is an error.
pub async fn bind_socket(
    path: &Path,
    group: Option<&str>,
) -> anyhow::Result<tokio::net::UnixListener> {
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            bail!("another meshd is already serving {}", path.display());
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove stale socket {}", path.display()))?;
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let gid = group.map(group_id).transpose()?;
    // Bound under a name nobody connects to, restricted, then renamed into place.
    let staging = staging_path(path);
    let _ = std::fs::remove_file(&staging);
    let listener = tokio::net::UnixListener::bind(&staging)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    let restrict = || -> std::io::Result<()> {
        if let Some(gid) = gid {
            std::os::unix::fs::chown(&staging, None, Some(gid))?;
        }
        let mode = if gid.is_some() { 0o660 } else { 0o600 };
        std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(mode))?;
        std::fs::rename(&staging, path)
    };
    if let Err(e) = restrict() {
        let _ = std::fs::remove_file(&staging);
        return Err(e).with_context(|| format!("cannot set up {}", path.display()));
    }
    Ok(listener)
}

fn staging_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.new", std::process::id()));
    path.with_file_name(name)
}

/// The id of group `name` (or a number).
fn group_id(name: &str) -> anyhow::Result<u32> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(name) {
        Ok(Some(group)) => Ok(group.gid.as_raw()),
        Ok(None) => bail!("--api-group {name}: no such group"),
        Err(e) => bail!("--api-group {name}: cannot read the group database: {e}"),
    }
}

/// A bearer token read from a file (surrounding whitespace ignored).
#[derive(Clone)]
pub struct Token(Vec<u8>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

impl Token {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the token file {}", path.display()))?;
        let token = text.trim();
        if token.len() < MIN_TOKEN_BYTES {
            bail!(
                "the token in {} is {} bytes; at least {MIN_TOKEN_BYTES} (e.g. `openssl rand -hex 32 > {}`)",
                path.display(),
                token.len(),
                path.display()
            );
        }
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            bail!(
                "the token in {} contains spaces or control characters",
                path.display()
            );
        }
        Ok(Self(token.as_bytes().to_vec()))
    }

    /// The value of an `Authorization` header that carries this token.
    pub fn header_value(&self) -> String {
        format!("Bearer {}", String::from_utf8_lossy(&self.0))
    }

    fn matches(&self, header: Option<&[u8]>) -> bool {
        let Some(given) = header.and_then(|h| h.strip_prefix(b"Bearer ")) else {
            return false;
        };
        given.ct_eq(&self.0).into()
    }
}

/// Middleware of the HTTP listener when it has a token: a request without it is answered 401
/// and reaches nothing.
pub async fn require_token(State(token): State<Token>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    if token.matches(given) {
        return next.run(request).await;
    }
    tracing::warn!(path = %request.uri().path(), "HTTP API request without a valid token refused");
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(ErrorBody {
            error: "this API needs `Authorization: Bearer TOKEN` (meshctl --token-file FILE)"
                .to_string(),
        }),
    )
        .into_response()
}

/// Checks the HTTP listener's address against its token: anything but loopback needs one.
pub fn check_http(addr: std::net::SocketAddr, token: Option<&Path>) -> anyhow::Result<()> {
    if !addr.ip().is_loopback() && token.is_none() {
        bail!(
            "--http {addr}: an API reachable from other machines needs --http-token FILE; \
             without one, bind it to a loopback address (127.0.0.1)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_matches_only_itself_in_a_bearer_header() {
        let t = Token(b"0123456789abcdef0123".to_vec());
        assert!(t.matches(Some(b"Bearer 0123456789abcdef0123")));
        assert!(!t.matches(Some(b"Bearer 0123456789abcdef012")));
        assert!(!t.matches(Some(b"Bearer 0123456789abcdef01234")));
        assert!(!t.matches(Some(b"0123456789abcdef0123")));
        assert!(!t.matches(Some(b"Basic 0123456789abcdef0123")));
        assert!(!t.matches(None));
    }

    #[test]
    fn short_or_spaced_tokens_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "short\n").unwrap();
        let e = Token::load(&path).unwrap_err().to_string();
        assert!(e.contains("at least 16"), "{e}");
        std::fs::write(&path, "0123456789 abcdef0123").unwrap();
        let e = Token::load(&path).unwrap_err().to_string();
        assert!(e.contains("spaces"), "{e}");
        std::fs::write(&path, "  0123456789abcdef0123\n").unwrap();
        assert!(Token::load(&path).is_ok());
    }

    #[test]
    fn only_loopback_goes_without_a_token() {
        let token = Path::new("/t");
        assert!(check_http("127.0.0.1:1".parse().unwrap(), None).is_ok());
        assert!(check_http("[::1]:1".parse().unwrap(), None).is_ok());
        let e = check_http("0.0.0.0:1".parse().unwrap(), None).unwrap_err();
        assert!(e.to_string().contains("--http-token"), "{e}");
        assert!(check_http("0.0.0.0:1".parse().unwrap(), Some(token)).is_ok());
    }
}
