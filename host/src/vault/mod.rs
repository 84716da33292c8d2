//! Credential sealing with AES-256-GCM (issue 4).
