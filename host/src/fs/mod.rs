//! The FUSE filesystem over the S3 client (issue 5).
