//! `callvault token create --role ROLE [--name N]`.

use std::process::ExitCode;

use clap::Subcommand;

use crate::config::Config;
use crate::roles::ROLES;
use crate::store::{tokens, Store};

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create an API token; prints it as the last line (it is stored hashed and cannot be shown again).
    Create {
        /// admin (everything), finance (calls, billing, reports), qa (calls, recordings), reports (calls, reports, metrics).
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(ROLES))]
        role: String,
        /// A label for the token (who or what uses it).
        #[arg(long, default_value = "")]
        name: String,
    },
}

pub fn run(cfg: Config, cmd: TokenCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        TokenCmd::Create { role, name } => {
            let store = Store::open_config(&cfg)?;
            let name = if name.is_empty() { role.clone() } else { name };
            let r2 = role.clone();
            let token = store
                .writer
                .write_blocking(move |tx| tokens::create(tx, &name, &r2))?;
            eprintln!("created a {role} token (shown once; keep it safe):");
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
