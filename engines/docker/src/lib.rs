//! The docker engine (in progress).
