//! `byos3 sandbox create|list|show|delete`, `byos3 attach` and
//! `byos3 detach`, against a running server (`BYOS3_URL`, `BYOS3_API_KEY`),
//! through the public [`crate::client`]. Human-readable output by default,
//! the server's JSON with `--json`.

use std::process::ExitCode;

use anyhow::{bail, Context as _};
use serde::Serialize;

use crate::client::{AttachSpec, Client, ClientError, SandboxSpec};

#[derive(clap::Subcommand)]
pub enum SandboxCommand {
    /// Create a sandbox, optionally attaching disks: --disk DISK:/mount/path[:sub/path][:ro]
    Create {
        /// Your own id for the sandbox (default: a generated sb_<ULID>).
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long = "disk", value_name = "DISK:MOUNT_PATH[:SUB_PATH][:ro]")]
        disks: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// List sandboxes.
    List {
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long, default_value_t = 0)]
        offset: u64,
        #[arg(long)]
        json: bool,
    },
    /// Show a sandbox and its attached disks.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Detach everything (flushing writes), then delete the sandbox.
    Delete { id: String },
}

#[derive(clap::Args)]
pub struct AttachArgs {
    pub sandbox: String,
    pub disk: String,
    pub mount_path: String,
    #[arg(long)]
    pub sub_path: Option<String>,
    #[arg(long)]
    pub read_only: bool,
    /// Print the server's JSON answer instead of a sentence.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct DetachArgs {
    pub sandbox: String,
    pub disk: String,
    pub mount_path: String,
    /// Print the server's JSON answer instead of a sentence.
    #[arg(long)]
    pub json: bool,
}

fn parse_disk_flag(s: &str) -> anyhow::Result<AttachSpec> {
    let mut parts = s.split(':');
    let (Some(disk), Some(mount)) = (parts.next(), parts.next()) else {
        bail!("--disk {s:?}: expected DISK:MOUNT_PATH[:SUB_PATH][:ro]");
    };
    let mut spec = AttachSpec::new(disk, mount);
    for p in parts {
        match p {
            "ro" => spec = spec.read_only(true),
            sub => spec = spec.sub_path(sub),
        }
    }
    Ok(spec)
}

fn print_json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Turns an API failure into the message and exit code a user acts on.
fn failed(e: ClientError) -> anyhow::Result<ExitCode> {
    eprintln!("byos3: {e}");
    Ok(ExitCode::FAILURE)
}

pub async fn run(cmd: SandboxCommand) -> anyhow::Result<ExitCode> {
    let api = Client::from_env().context("configuring the API client")?;
    match cmd {
        SandboxCommand::Create { id, name, disks, json } => {
            let spec = SandboxSpec {
                id,
                name,
                disks: disks
                    .iter()
                    .map(|d| parse_disk_flag(d))
                    .collect::<anyhow::Result<Vec<_>>>()?,
            };
            let sb = match api.create_sandbox(&spec).await {
                Ok(sb) => sb,
                Err(e) => return failed(e),
            };
            if json {
                print_json(&sb)?;
            } else {
                println!(
                    "created {} ({}) root {}",
                    sb.id,
                    sb.name.as_deref().unwrap_or("-"),
                    sb.root.as_deref().unwrap_or("-")
                );
                for d in &sb.disks {
                    println!(
                        "  {} at {}: {}{}",
                        d.disk_id,
                        d.mount_path,
                        d.mount_status,
                        d.mount_error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default()
                    );
                }
            }
            let all_mounted = sb.disks.iter().all(|d| d.mount_status == "mounted");
            Ok(if all_mounted {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        SandboxCommand::List { limit, offset, json } => match api.list_sandboxes(limit, offset).await {
            Ok(page) if json => print_json(&page).map(|()| ExitCode::SUCCESS),
            Ok(page) => {
                println!("{:<32} {:<24} {:<10} ROOT", "ID", "NAME", "STATUS");
                for s in &page.data {
                    println!(
                        "{:<32} {:<24} {:<10} {}",
                        s.id,
                        s.name.as_deref().unwrap_or("-"),
                        s.status,
                        s.root.as_deref().unwrap_or("-")
                    );
                }
                println!("{} of {}", page.pagination.count, page.pagination.total);
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => failed(e),
        },
        SandboxCommand::Show { id, json } => {
            let (sb, disks) = match (api.get_sandbox(&id).await, api.attachments(&id, 500, 0).await) {
                (Ok(sb), Ok(d)) => (sb, d),
                (Err(e), _) | (_, Err(e)) => return failed(e),
            };
            if json {
                print_json(&serde_json::json!({"sandbox": sb, "disks": disks}))?;
            } else {
                println!(
                    "{} ({}) {} root {}",
                    sb.id,
                    sb.name.as_deref().unwrap_or("-"),
                    sb.status,
                    sb.root.as_deref().unwrap_or("-")
                );
                for a in &disks.data {
                    let sub = if a.sub_path.is_empty() {
                        String::new()
                    } else {
                        format!(" sub_path {}", a.sub_path)
                    };
                    let err = a.mount_error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default();
                    println!(
                        "  {} {} -> {}{sub}: {}{err}",
                        a.name, a.config.bucket, a.mount_path, a.mount_status
                    );
                    if let Some(n) = &a.notice {
                        println!("    note: {n}");
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        SandboxCommand::Delete { id } => match api.delete_sandbox(&id).await {
            Ok(()) => {
                println!("deleted {id}");
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => failed(e),
        },
    }
}

pub async fn attach(a: AttachArgs) -> anyhow::Result<ExitCode> {
    let api = Client::from_env().context("configuring the API client")?;
    let mut spec = AttachSpec::new(&a.disk, &a.mount_path).read_only(a.read_only);
    if let Some(s) = &a.sub_path {
        spec = spec.sub_path(s);
    }
    match api.attach(&a.sandbox, &spec).await {
        Ok(()) if a.json => print_json(&serde_json::json!({"ok": true})).map(|()| ExitCode::SUCCESS),
        Ok(()) => {
            println!("attached {} at {} in {}", a.disk, a.mount_path, a.sandbox);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => failed(e),
    }
}

pub async fn detach(a: DetachArgs) -> anyhow::Result<ExitCode> {
    let api = Client::from_env().context("configuring the API client")?;
    match api.detach(&a.sandbox, &a.disk, &a.mount_path).await {
        Ok(()) if a.json => print_json(&serde_json::json!({"detached": true})).map(|()| ExitCode::SUCCESS),
        Ok(()) => {
            println!(
                "detached {} from {} in {} (the bucket is untouched)",
                a.disk, a.mount_path, a.sandbox
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_flags_parse() {
        let s = parse_disk_flag("eu-data:/mnt/data:team-a/:ro").unwrap();
        assert_eq!(
            (
                s.disk_id.as_str(),
                s.mount_path.as_str(),
                s.sub_path.as_deref(),
                s.read_only
            ),
            ("eu-data", "/mnt/data", Some("team-a/"), true)
        );
        let s = parse_disk_flag("d:/x").unwrap();
        assert_eq!((s.sub_path, s.read_only), (None, false));
        assert!(parse_disk_flag("just-a-disk").is_err());
    }
}
