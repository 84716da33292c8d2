//! Attach/detach lifecycle (issue 6).
