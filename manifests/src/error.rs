//! The one error type of the crate. Its `Display` is a single human line that says where the
//! problem is: `line 12, column 3: …` for syntax, `spec.containers[0].image: missing` for
//! content, prefixed with `document N: ` when the file holds more than one document.

use std::fmt;

/// What a manifest may contain, quoted by errors and warnings about refused kinds.
pub const SUPPORTED_KINDS: &str = "Pod (v1), Deployment (apps/v1), Job (batch/v1), DaemonSet \
    (apps/v1) with ConfigMap and Secret (v1) beside them, beemesh.io/v1 Function and \
    VirtualMachine, and Compose files";

/// What went wrong. [`Error`] adds the document it happened in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No bytes, or only whitespace, comments and empty documents.
    #[error("empty manifest: nothing to deploy")]
    Empty,
    /// Refused before parsing.
    #[error("manifest is {size} bytes; the limit is {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// More non-empty documents than [`crate::Limits::max_documents`].
    #[error("manifest has more than {limit} documents; split it into several files")]
    TooManyDocuments { limit: usize },
    /// The text is not valid YAML or JSON (including duplicate keys). `line` and `column`
    /// are 1-based; 0 means the parser gave no position.
    #[error("{}", located(*line, *column, message))]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    /// Alias expansion, merge keys or nesting went past the crate's bounds.
    #[error("{}", located(*line, *column, message))]
    TooComplex {
        line: usize,
        column: usize,
        message: String,
    },
    /// A document that is neither Kubernetes, Compose nor beemesh.io/v1.
    #[error(
        "cannot tell the format: expected apiVersion and kind (Kubernetes, beemesh.io/v1) or \
         a top-level services map (Compose){}",
        found_keys(keys)
    )]
    UnknownFormat { keys: Vec<String> },
    /// A kind the mesh does not deploy (or an apiVersion it does not know for a kind).
    #[error(
        "kind: {kind} ({api_version}) is not supported: {reason}; supported: {SUPPORTED_KINDS}"
    )]
    UnsupportedKind {
        kind: String,
        api_version: String,
        reason: String,
    },
    /// A Kubernetes API version that Kubernetes itself no longer serves.
    #[error(
        "apiVersion: {kind} in {api_version} was removed in Kubernetes {removed_in}: use {replacement}"
    )]
    RemovedApi {
        api_version: String,
        kind: String,
        removed_in: String,
        replacement: String,
    },
    /// A field is missing, has the wrong type or an invalid value.
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    /// A Compose file without a top-level `name:` parsed without a default name.
    #[error("compose file has no top-level name: and no name was given")]
    NoName,
    /// Every document was a kind the mesh does not deploy; `skipped` names them
    /// (`Service/frontend`, with the removal notice for removed API versions).
    #[error("nothing to deploy: found {}; supported: {SUPPORTED_KINDS}", skipped.join(", "))]
    NothingToDeploy { skipped: Vec<String> },
}

fn located(line: usize, column: usize, message: &str) -> String {
    if line == 0 {
        message.to_string()
    } else {
        format!("line {line}, column {column}: {message}")
    }
}

fn found_keys(keys: &[String]) -> String {
    if keys.is_empty() {
        String::new()
    } else {
        format!("; found {}", keys.join(", "))
    }
}

/// A manifest could not be turned into workloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    /// 1-based document index, set only when the file holds several documents.
    document: Option<usize>,
}

impl Error {
    pub fn new(kind: ErrorKind) -> Self {
        Self {
            kind,
            document: None,
        }
    }

    /// A content error at a field path.
    pub(crate) fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid {
            path: path.into(),
            message: message.into(),
        })
    }

    /// Tags the error with the document it happened in (1-based).
    pub(crate) fn in_document(mut self, index: usize) -> Self {
        self.document = Some(index);
        self
    }

    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The 1-based document index, when the file holds several documents.
    pub fn document(&self) -> Option<usize> {
        self.document
    }

    /// The field path of a content error (`spec.containers[0].image`).
    pub fn path(&self) -> Option<&str> {
        match &self.kind {
            ErrorKind::Invalid { path, .. } => Some(path),
            ErrorKind::UnsupportedKind { .. } => Some("kind"),
            ErrorKind::RemovedApi { .. } => Some("apiVersion"),
            _ => None,
        }
    }

    /// 1-based line and column of a syntax or complexity error.
    pub fn line_column(&self) -> Option<(usize, usize)> {
        match &self.kind {
            ErrorKind::Syntax { line, column, .. } | ErrorKind::TooComplex { line, column, .. }
                if *line > 0 =>
            {
                Some((*line, *column))
            }
            _ => None,
        }
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Self::new(kind)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(index) = self.document {
            write!(f, "document {index}: ")?;
        }
        // Messages quote user text (kinds, keys, values); keep them on one line.
        f.write_str(&one_line(&self.kind.to_string()))
    }
}

/// Escapes control characters (`\n`, `\t`, …) so that text stays on one line.
pub(crate) fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_located_line() {
        let e = Error::invalid("spec.containers[0].image", "missing").in_document(2);
        assert_eq!(
            e.to_string(),
            "document 2: spec.containers[0].image: missing"
        );
        assert_eq!(e.path(), Some("spec.containers[0].image"));
        let s = Error::new(ErrorKind::Syntax {
            line: 12,
            column: 3,
            message: "duplicate key \"selector\"".into(),
        });
        assert_eq!(
            s.to_string(),
            "line 12, column 3: duplicate key \"selector\""
        );
        assert_eq!(s.line_column(), Some((12, 3)));
        let r = Error::new(ErrorKind::RemovedApi {
            api_version: "extensions/v1beta1".into(),
            kind: "DaemonSet".into(),
            removed_in: "1.16".into(),
            replacement: "apps/v1".into(),
        });
        assert_eq!(
            r.to_string(),
            "apiVersion: DaemonSet in extensions/v1beta1 was removed in Kubernetes 1.16: use apps/v1"
        );
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn user_text_cannot_break_the_line() {
        let e = Error::new(ErrorKind::UnsupportedKind {
            kind: "Pod\nx".into(),
            api_version: "v1".into(),
            reason: "r\tq".into(),
        });
        assert!(
            e.to_string()
                .starts_with("kind: Pod\\nx (v1) is not supported: r\\tq;"),
            "{e}"
        );
    }
}
