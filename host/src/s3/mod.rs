//! An S3 client with no provider knowledge: providers describe themselves
//! through an [`Endpoint`] (base URL, signing region, addressing, quirks).
//!
//! Requests are signed with SigV4 (`aws-sigv4`), sent over a pooled hyper
//! client with rustls, retried with backoff when that is safe, and bodies
//! stream in both directions.

mod client;
mod credentials;
mod endpoint;
mod error;
mod retry;
mod time;
pub(crate) mod transport;
mod xml;

pub use client::{
    ByteStream, ClientBuildError, ClientConfig, GetObjectOutput, ObjectMeta, Operation, Outcome, Payload, PutOptions,
    RawRequest, RawResponse, S3Client, StatsSnapshot, UploadObserver, HOST_OWNED_HEADERS,
};
pub use credentials::Credentials;
pub use endpoint::{encode_key, Addressing, Endpoint, EndpointError, Quirks};
pub use error::{S3Error, ServiceError};
pub use retry::RetryPolicy;
pub use time::parse_rfc3339;
pub use transport::{AddressPolicy, AllowAll, ResolveOverrides, TransportConfig, TransportError};
pub use xml::{CompletedPart, DeleteFailure, ListPage, ObjectInfo, UploadInfo, UploadsPage};
