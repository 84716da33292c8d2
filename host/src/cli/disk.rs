//! `byos3 disk`: the Disks API from the command line, against a running
//! server (`BYOS3_URL`, default `http://127.0.0.1:8787`; `BYOS3_API_KEY`).
//!
//! Credentials are read from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`,
//! else prompted for on the terminal (the secret without echo), else read
//! as two lines from standard input; never from an argument, which would
//! land in shell history and `ps`.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use http::{Method, StatusCode};
use serde_json::{json, Value};
use zeroize::Zeroizing;

#[derive(clap::Subcommand)]
pub enum DiskCommand {
    /// Register a bucket as a disk (the server probes it first).
    Create {
        /// Disk name: ^[a-z0-9][a-z0-9-]{0,62}$
        name: String,
        #[arg(long)]
        bucket: String,
        /// Absolute http(s) URL of the S3 endpoint.
        #[arg(long)]
        endpoint: String,
        /// Signing region (default: the provider plugin's).
        #[arg(long)]
        region: Option<String>,
        /// true: path-style addressing; false: virtual-hosted (default: the provider plugin's).
        #[arg(long, value_name = "BOOL")]
        use_path_style: Option<bool>,
        /// Provider plugin id (default: detected from the endpoint).
        #[arg(long)]
        provider: Option<String>,
        /// Provider option KEY=VALUE (repeatable).
        #[arg(long = "option", value_name = "KEY=VALUE")]
        options: Vec<String>,
    },
    /// List disks.
    List {
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long, default_value_t = 0)]
        offset: u64,
    },
    /// Show one disk (id or name).
    Show { id: String },
    /// Replace a disk's credentials (probed first; the old ones stay if that fails).
    Rotate { id: String },
    /// Forget a disk (the bucket is never touched).
    Delete { id: String },
}

/// Prints the outcome: `data` as JSON on success, the reason on failure.
fn report(status: StatusCode, v: &Value) -> ExitCode {
    match v.get("status").and_then(Value::as_str) {
        Some("success") => {
            println!("{}", serde_json::to_string_pretty(&v["data"]).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Some("fail") => {
            let d = &v["data"];
            eprintln!(
                "byos3: {} {}: {}",
                status.as_u16(),
                d["code"].as_str().unwrap_or("error"),
                d["message"].as_str().unwrap_or("")
            );
            for k in ["field", "expected_region", "hint"] {
                if let Some(s) = d.get(k).and_then(Value::as_str) {
                    eprintln!("  {k}: {s}");
                }
            }
            ExitCode::FAILURE
        }
        _ => {
            eprintln!(
                "byos3: {} {}",
                status.as_u16(),
                v.get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("unexpected response")
            );
            ExitCode::FAILURE
        }
    }
}

/// Reads a line from the terminal with echo off.
fn read_hidden(prompt: &str) -> anyhow::Result<Zeroizing<String>> {
    let stdin = std::io::stdin();
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let fd = libc::STDIN_FILENO;
    // SAFETY: termios calls on our own stdin with a zero-initialised struct.
    let mut term: libc::termios = unsafe { std::mem::zeroed() };
    let have_term = unsafe { libc::tcgetattr(fd, &mut term) } == 0;
    if have_term {
        let mut quiet = term;
        quiet.c_lflag &= !libc::ECHO;
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    }
    let mut line = Zeroizing::new(String::new());
    let r = stdin.lock().read_line(&mut line);
    if have_term {
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &term) };
        eprintln!();
    }
    r?;
    Ok(Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string()))
}

/// The access key pair from the environment, the terminal or stdin.
fn read_credentials() -> anyhow::Result<(Zeroizing<String>, Zeroizing<String>)> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty()).map(Zeroizing::new);
    if let (Some(a), Some(s)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        return Ok((a, s));
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Access key id: ");
        std::io::stderr().flush()?;
        let mut a = Zeroizing::new(String::new());
        stdin.lock().read_line(&mut a)?;
        let a = Zeroizing::new(a.trim().to_string());
        let s = read_hidden("Secret access key: ")?;
        return Ok((a, s));
    }
    let mut lines = stdin.lock().lines();
    let mut next = || -> anyhow::Result<Zeroizing<String>> {
        Ok(Zeroizing::new(
            lines
                .next()
                .context("expected the access key id and the secret key on two lines of stdin")??
                .trim()
                .to_string(),
        ))
    };
    let a = next()?;
    let s = next()?;
    Ok((a, s))
}

fn credentials_body(extra: Value) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let (access_key, secret_key) = read_credentials()?;
    if access_key.is_empty() || secret_key.is_empty() {
        bail!("the access key id and the secret key must not be empty");
    }
    #[derive(serde::Serialize)]
    struct Creds<'a> {
        access_key: &'a str,
        secret_key: &'a str,
    }
    let mut body = extra;
    let creds = Creds {
        access_key: &access_key,
        secret_key: &secret_key,
    };
    let mut out = Zeroizing::new(Vec::with_capacity(1024));
    // Written by hand so the secret is not copied into a serde_json::Value.
    let without = serde_json::to_vec(&body.take())?;
    out.extend_from_slice(&without[..without.len() - 1]);
    if without.len() > 2 {
        out.push(b',');
    }
    out.extend_from_slice(b"\"credentials\":");
    serde_json::to_writer(&mut *out, &creds)?;
    out.push(b'}');
    Ok(out)
}

fn path_id(id: &str) -> String {
    percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC).to_string()
}

pub async fn run(cmd: DiskCommand) -> anyhow::Result<ExitCode> {
    let api = crate::client::Client::from_env()?;
    let (status, v) = match cmd {
        DiskCommand::Create {
            name,
            bucket,
            endpoint,
            region,
            use_path_style,
            provider,
            options,
        } => {
            let mut config = json!({"bucket": bucket, "endpoint": endpoint});
            if let Some(r) = region {
                config["region"] = json!(r);
            }
            if let Some(p) = use_path_style {
                config["use_path_style"] = json!(p);
            }
            if let Some(p) = provider {
                config["provider"] = json!(p);
            }
            if !options.is_empty() {
                let mut m = serde_json::Map::new();
                for o in options {
                    let (k, v) = o
                        .split_once('=')
                        .with_context(|| format!("--option {o:?}: expected KEY=VALUE"))?;
                    m.insert(k.to_string(), json!(v));
                }
                config["options"] = Value::Object(m);
            }
            let body = credentials_body(json!({"name": name, "kind": "s3", "config": config}))?;
            api.request(Method::POST, "/v1/disks", Some(body)).await?
        }
        DiskCommand::List { limit, offset } => {
            api.request(Method::GET, &format!("/v1/disks?limit={limit}&offset={offset}"), None)
                .await?
        }
        DiskCommand::Show { id } => {
            api.request(Method::GET, &format!("/v1/disks/{}", path_id(&id)), None)
                .await?
        }
        DiskCommand::Rotate { id } => {
            let body = credentials_body(json!({}))?;
            api.request(Method::PATCH, &format!("/v1/disks/{}", path_id(&id)), Some(body))
                .await?
        }
        DiskCommand::Delete { id } => {
            api.request(Method::DELETE, &format!("/v1/disks/{}", path_id(&id)), None)
                .await?
        }
    };
    Ok(report(status, &v))
}

#[cfg(test)]
mod tests {
    #[test]
    fn body_splices_credentials_without_a_value_copy() {
        std::env::set_var("AWS_ACCESS_KEY_ID", "AK");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "S/K+");
        let b = super::credentials_body(serde_json::json!({"name":"x"})).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"name":"x","credentials":{"access_key":"AK","secret_key":"S/K+"}})
        );
        let b = super::credentials_body(serde_json::json!({})).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"credentials":{"access_key":"AK","secret_key":"S/K+"}})
        );
    }
}
