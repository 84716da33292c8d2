//! `byos3-garage -- CMD [ARGS...]`: runs CMD next to a fresh local Garage
//! server, then stops the server and exits with CMD's status. CMD finds the
//! server in its environment: `S3_ENDPOINT`, `S3_BUCKET`, `S3_REGION`,
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`. Used by scripts that drive
//! the `byos3` binary (plugin conformance) and by people trying a plugin.

use std::process::{Command, ExitCode};

use byos3_tests::Garage;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip_while(|a| a != "--").skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprintln!("usage: byos3-garage -- CMD [ARGS...]");
        return ExitCode::from(2);
    };
    let garage = match Garage::start() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("byos3-garage: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let status = Command::new(cmd)
        .args(rest)
        .env("S3_ENDPOINT", garage.endpoint_url())
        .env("S3_BUCKET", &garage.bucket)
        .env("S3_REGION", &garage.region)
        .env("AWS_ACCESS_KEY_ID", &garage.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &garage.secret_key)
        .status();
    drop(garage);
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => ExitCode::from(s.code().map_or(1, |c| c.clamp(1, 255) as u8)),
        Err(e) => {
            eprintln!("byos3-garage: cannot run {cmd}: {e}");
            ExitCode::FAILURE
        }
    }
}
