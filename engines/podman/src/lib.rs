//! The podman engine (in progress).
