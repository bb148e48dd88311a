//! `lsmvault init`: creates a repository, encrypted unless `--no-encryption`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use lsmvault::{Error, InitOptions, Repository};

use super::Context;
use crate::password;

#[derive(Args)]
pub struct InitArgs {
    /// Default compression of new blobs: auto, off, auto:N or zstd:N.
    #[arg(long, default_value = "auto")]
    compression: String,
    /// Create a plaintext repository (without it, init requires a password).
    #[arg(long)]
    no_encryption: bool,
    /// Milliseconds one password check should take (argon2id is tuned to it).
    #[arg(long, default_value_t = 500, value_name = "MS")]
    kdf_target_ms: u64,
    /// AEAD of an encrypted repository: aes-256-gcm-subkey (fast with AES
    /// hardware) or xchacha20-poly1305.
    #[arg(long, default_value = "aes-256-gcm-subkey")]
    cipher: String,
    /// Reed-Solomon parity over groups of packs, DATA+PARITY (e.g. 10+2:
    /// any 2 of every 10 packs and their 2 parity objects can be lost and
    /// rebuilt with `lsmvault repair packs`). Default: no parity.
    #[arg(long, value_name = "DATA+PARITY")]
    parity: Option<String>,
}

pub fn run(context: &Context, args: &InitArgs) -> Result<ExitCode, Error> {
    let location = context.location()?;
    // Field order is evaluation order: a bad --compression is reported
    // before the password is asked for.
    let options = InitOptions {
        compression: args.compression.parse()?,
        parity: args.parity.as_deref().map(str::parse).transpose()?,
        password: password::new_repository_password(
            context.password_sources(),
            args.no_encryption,
            location,
        )?,
        kdf_target: Duration::from_millis(args.kdf_target_ms),
        cipher: args.cipher.parse()?,
        ..InitOptions::default()
    };
    let existed = location.is_dir();
    let repository = Repository::init(context.backend()?, options)?;
    if existed {
        warn_if_readable_by_others(location);
    }
    context.output().summary(repository.config(), |config| {
        outln!("created repository {} at {}", config.id, location.display());
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Warns when the existing directory `init` used can be read by group or
/// others. Its mode is the user's choice and is kept; everything `init`
/// created inside is 0700, but the name listing of the root is not.
fn warn_if_readable_by_others(location: &Path) {
    let Ok(metadata) = location.metadata() else {
        return;
    };
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o044 != 0 {
        eprintln!(
            "warning: {} is readable by group or others (mode {mode:04o}); its contents are created 0700/0400, `chmod 700 {}` closes the directory too",
            location.display(),
            location.display()
        );
    }
}
