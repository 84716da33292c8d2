#![warn(missing_docs)]
//! byos3 mounts your own S3-compatible bucket into a sandbox.
//!
//! Modules, with dependencies pointing one way (`api -> gateway -> mount ->
//! fs -> s3`; `plugin`, `store` and `vault` are leaves; `client` and `cli`
//! sit on top):
//! - [`s3`]: the S3 client (SigV4, pooled hyper + rustls, retries, streaming).
//! - [`plugin`]: provider plugins as sandboxed WebAssembly components.
//! - [`fs`]: the FUSE filesystem over a bucket prefix.
//! - [`vault`], [`store`]: sealed credentials and the registry.
//! - [`mount`]: sandboxes, mount paths and the table of live mounts.
//! - [`gateway`]: the operations (register, probe, attach, detach, crash
//!   recovery) on one state directory; embedding runtimes use [`Gateway`].
//! - [`api`]: the HTTP API, a JSON skin over the gateway.
//! - [`client`]: a client of the HTTP API (what the CLI uses).

pub mod api;
pub mod cli;
pub mod client;
pub mod fs;
pub mod gateway;
pub mod mount;
pub mod plugin;
pub mod s3;
pub mod store;
pub mod vault;

pub use gateway::{Gateway, GatewayError, GatewayOptions};
