//! Multi-node scenarios live in `tests/tests/`.
