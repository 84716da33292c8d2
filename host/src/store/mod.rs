//! The durable registry of disks, sandboxes and attachments (issue 4).
