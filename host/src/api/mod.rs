//! The HTTP API (issue 4).
