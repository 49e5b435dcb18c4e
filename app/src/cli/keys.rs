//! `session-backend keys new --tenant T`: mints an API key and prints it,
//! once, with the hash the server is given (`auth.keys` or a line of
//! `auth.keys_file`). The key itself is stored nowhere.

use session_backend::domain::keys;

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Mint a key for a tenant: prints the key (shown only now) and the
    /// `TENANT HASH` line for the keys file.
    New(NewArgs),
}

#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The tenant the key acts for: 1 to 64 letters, digits or `-_.:@`.
    #[arg(long)]
    tenant: String,
    /// Print `{"tenant", "key", "hash"}` as JSON instead.
    #[arg(long)]
    json: bool,
}

/// Runs the action; `Err` is one line for standard error.
pub fn run(action: &Action) -> Result<(), String> {
    let Action::New(args) = action;
    keys::check_tenant(&args.tenant)?;
    let minted = keys::mint()?;
    if args.json {
        let line = serde_json::json!({"tenant": args.tenant, "key": minted.key, "hash": minted.hash});
        println!("{line}");
    } else {
        println!("key:  {}", minted.key);
        println!("line: {} {}", args.tenant, minted.hash);
        eprintln!(
            "The key is shown only now: give it to the client. Add the line to the keys file \
             (auth.keys_file), or the hash to auth.keys."
        );
    }
    Ok(())
}
