#![warn(missing_docs)]
//! byos3 mounts your own S3-compatible bucket into a sandbox.
//!
//! Modules, with dependencies pointing one way (`gateway -> api -> mount ->
//! fs -> s3`; `plugin` and `vault` are leaves; `client` and `cli` sit on top):
//! - [`s3`]: the S3 client (SigV4, pooled hyper + rustls, retries, streaming).
//! - [`plugin`]: provider plugins as sandboxed WebAssembly components.
//! - [`fs`]: the FUSE filesystem over a bucket prefix.
//! - [`vault`], [`store`], [`api`]: credentials, registry and the HTTP API.
//! - [`mount`]: the attach/detach lifecycle.
//! - [`gateway`]: the API's operations without HTTP, for embedding runtimes
//!   ([`Gateway`]): the same state, validation and error codes as [`api`].
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
