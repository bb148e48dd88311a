//! `lsmvault key list|add|remove|passwd`: the key files (passwords) of an
//! encrypted repository. Every key unlocks the same master key.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use lsmvault::repo::KeyListing;
use lsmvault::Error;

use super::Context;
use crate::output::{short_key_name, Output};
use crate::password;

#[derive(Subcommand)]
pub enum KeyCommand {
    /// List the key files.
    List,
    /// Add a key: a new password for the same repository (from
    /// LSMVAULT_NEW_PASSWORD, --new-password-file, or asked).
    Add(NewPasswordArgs),
    /// Remove a key file (not the one in use).
    Remove {
        /// Key name (or a prefix of at least 8 digits).
        key: String,
    },
    /// Change the password of the key in use.
    Passwd(NewPasswordArgs),
}

#[derive(Args)]
pub struct NewPasswordArgs {
    /// Read the new password from this file.
    #[arg(long, env = "LSMVAULT_NEW_PASSWORD_FILE")]
    new_password_file: Option<PathBuf>,
    /// Milliseconds one password check should take.
    #[arg(long, default_value_t = 500, value_name = "MS")]
    kdf_target_ms: u64,
}

impl NewPasswordArgs {
    fn password(&self) -> Result<String, Error> {
        password::new_key_password(self.new_password_file.as_deref())
    }

    fn kdf_target(&self) -> Duration {
        Duration::from_millis(self.kdf_target_ms)
    }
}

pub fn run(context: &Context, command: &KeyCommand) -> Result<ExitCode, Error> {
    let mut repository = context.open_repository()?;
    let output = context.output();
    match command {
        KeyCommand::List => {
            let keys = repository.list_keys()?;
            output.show(keys.as_slice(), print_keys)?;
        }
        KeyCommand::Add(args) => {
            let name = repository.add_key(&args.password()?, args.kdf_target())?;
            report_key(output, "added", &name)?;
        }
        KeyCommand::Remove { key } => {
            repository.remove_key(key)?;
            report_key(output, "removed", key)?;
        }
        KeyCommand::Passwd(args) => {
            let name = repository.change_password(&args.password()?, args.kdf_target())?;
            report_key(output, "changed password; new key", &name)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_keys(keys: &[KeyListing]) {
    for key in keys {
        if let Some(reason) = &key.damaged {
            outln!(
                "  {} DAMAGED: {reason} (`lsmvault key remove {}` deletes it)",
                short_key_name(&key.name),
                short_key_name(&key.name)
            );
            continue;
        }
        outln!(
            "{} {} {}@{} {}",
            if key.current { "*" } else { " " },
            short_key_name(&key.name),
            key.user,
            key.host,
            key.created
        );
    }
}

fn report_key(output: Output, action: &str, name: &str) -> Result<(), Error> {
    output.summary(
        &serde_json::json!({ "action": action, "key": name }),
        |_| {
            outln!("{action} {}", short_key_name(name));
        },
    )
}
