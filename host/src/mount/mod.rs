//! The attach/detach lifecycle: sandboxes (roots given by the embedding
//! runtime), validated mount paths, and the table of live mounts.

mod journal;
mod manager;
mod paths;
mod sandbox;

pub use manager::{AttachError, AttachRequest, AttachmentState, DetachError, MountManager, MountMetrics, MountStatus};
pub use paths::{MountPath, PathError, SubPath};
pub use sandbox::{DirectoryResolver, SandboxError, SandboxResolver, SandboxRoot};
