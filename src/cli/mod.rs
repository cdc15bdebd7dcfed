//! The `kvault` command line: the programs (`server`, `dev`) and the people's client
//! commands (`secret`, `token`).

mod cert;
mod common;
pub mod exit;
mod key;
mod lifecycle;
mod secret;
mod vault;

use crate::dev::{DevOptions, TokenRequest};
use crate::server::config::{ServerConfig, ServerOptions};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "kvault", version, about = "A key vault for Kubernetes")]
pub struct Cli {
    /// Log format: human text or one JSON object per line.
    #[arg(
        long,
        global = true,
        env = "KVAULT_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one vault's data plane (HTTPS key-vault API).
    Server(Box<ServerOptions>),
    /// Run the Secrets Store CSI Driver provider (mounts vault objects into pods).
    Provider(crate::provider::ProviderOptions),
    /// Run a vault on this machine with embedded defaults (state in ./.kvault).
    Dev(DevOptions),
    /// Mint a token from a dev vault's local issuer.
    Token(TokenArgs),
    /// Work with secrets.
    #[command(subcommand)]
    Secret(secret::SecretCommand),
    /// Work with certificates, issuers and contacts.
    #[command(subcommand)]
    Cert(cert::CertCommand),
    /// Work with keys and cryptographic operations.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Read or replace a vault's policy document (control plane only).
    #[command(subcommand)]
    Policy(secret::PolicyCommand),
    /// Run the Kubernetes operator (reconciles Vault, AccessPolicy and RoleAssignment).
    Operator(crate::operator::OperatorOptions),
    /// Print the CustomResourceDefinitions (Vault, AccessPolicy, RoleAssignment) as YAML.
    Crd,
    /// Deleted vaults in a cluster: list them, purge one (Kubernetes API).
    #[command(subcommand)]
    Vault(vault::VaultCommand),
    /// Print a shell completion script, e.g. `source <(kvault completion bash)`.
    Completion {
        /// The shell: bash, zsh, fish, powershell or elvish.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, clap::Args)]
struct TokenArgs {
    /// The dev vault's state directory.
    #[arg(long, env = "KVAULT_STATE_DIR", default_value = crate::dev::DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// A service account: NAMESPACE/NAME.
    #[arg(long)]
    sa: Option<String>,
    /// A user id.
    #[arg(long)]
    user: Option<String>,
    /// A group the caller belongs to (repeatable).
    #[arg(long = "group")]
    groups: Vec<String>,
    /// The application the token was issued to.
    #[arg(long)]
    app: Option<String>,
    /// Lifetime, e.g. 30m, 1h, 7d.
    #[arg(long, default_value = "1h", value_parser = crate::clock::parse_duration)]
    ttl: std::time::Duration,
    /// Audience (default: the vault URL).
    #[arg(long)]
    audience: Option<String>,
    /// Write a token for the workload-identity audience to this file (0600), as the kubelet
    /// projects one into a pod, and print the variables that make `DefaultAzureCredential`
    /// exchange it at the dev vault's token service.
    #[arg(long, value_name = "FILE")]
    federated_token_file: Option<PathBuf>,
}

fn init_logging(format: LogFormat, default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    // Colours only for a person at a terminal, never in a collected log.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Parses the command line and runs it. Errors print one line and exit with their class's
/// status ([`exit::Class`]).
pub fn main() -> ExitCode {
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // `-o` and `--field` (global flags of the client commands) as the print helpers see them.
    let mut leaf = &matches;
    while let Some((_, sub)) = leaf.subcommand() {
        leaf = sub;
    }
    if let Ok(Some(output)) = leaf.try_get_one::<common::Output>("output") {
        let field = leaf.try_get_one::<String>("field").ok().flatten().cloned();
        common::select_output(*output, field);
    }
    crate::install_crypto_provider();
    let level = match cli.command {
        Command::Server(_) | Command::Dev(_) | Command::Provider(_) | Command::Operator(_) => {
            "info"
        }
        _ => "warn",
    };
    init_logging(cli.log_format, level);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kvault: cannot start the async runtime: {e}");
            return exit::Class::Local.exit_code();
        }
    };
    let result: anyhow::Result<()> = rt.block_on(async move {
        match cli.command {
            Command::Server(opts) => {
                let config = ServerConfig::from_options(*opts)?;
                crate::server::run(config).await?;
                Ok(())
            }
            Command::Dev(opts) => crate::dev::run(opts).await,
            Command::Provider(opts) => crate::provider::run(opts).await,
            Command::Operator(opts) => crate::operator::run(opts).await,
            Command::Vault(cmd) => vault::run(cmd).await,
            Command::Token(t) => {
                let request = TokenRequest {
                    sa: t.sa,
                    user: t.user,
                    groups: t.groups,
                    app: t.app,
                    ttl: t.ttl,
                    audience: t.audience,
                };
                if let Some(file) = &t.federated_token_file {
                    if request.audience.is_some() {
                        anyhow::bail!("--federated-token-file sets the audience; drop --audience");
                    }
                    crate::dev::write_federated_token(&t.state_dir, file, &request)?;
                    let client_id = crate::dev::subject_of(&request)?;
                    let env = crate::dev::workload_identity_env(&t.state_dir, &client_id, file)?;
                    common::write_bytes(env.as_bytes())?;
                    return Ok(());
                }
                let token = crate::dev::mint_token(&t.state_dir, &request)?;
                common::write_bytes(token.as_bytes())?;
                common::write_bytes(b"\n")?;
                Ok(())
            }
            Command::Secret(cmd) => secret::run(cmd).await,
            Command::Policy(cmd) => secret::run_policy(cmd).await,
            Command::Key(cmd) => key::run(cmd).await,
            Command::Cert(cmd) => cert::run(cmd).await,
            Command::Completion { shell } => {
                // Generated into memory first: clap_complete panics on a failed write.
                let mut script = Vec::new();
                clap_complete::generate(
                    shell,
                    &mut <Cli as clap::CommandFactory>::command(),
                    "kvault",
                    &mut script,
                );
                common::write_bytes(&script)?;
                Ok(())
            }
            Command::Crd => {
                let yaml = crate::api::all_crds_yaml()?;
                common::write_bytes(yaml.as_bytes())?;
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `kvault … | head -1`: the reader has what it wanted; not a failure, nothing to say.
        Err(e) if exit::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // The error and its causes, each once ("cannot reach the vault: … invalid peer
            // certificate: UnknownIssuer" or "… Connection refused").
            eprintln!("kvault: {}", crate::error_chain::render(e.as_ref()));
            exit::Class::of(&e).exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every subcommand and every argument it shows, with no help text: `path: arg`.
    fn missing_help(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        if cmd.get_about().is_none() && !cmd.is_hide_set() {
            out.push(format!("{path} (the command)"));
        }
        for arg in cmd.get_arguments() {
            let generated = matches!(
                arg.get_action(),
                clap::ArgAction::Help
                    | clap::ArgAction::HelpShort
                    | clap::ArgAction::HelpLong
                    | clap::ArgAction::Version
            );
            if arg.is_hide_set() || generated {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                out.push(format!("{path}: {}", arg.get_id()));
            }
        }
        // clap's own `help` subcommand mirrors the tree; its entries are checked where they
        // are defined.
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            missing_help(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_subcommand_and_argument_has_help_text() {
        use clap::CommandFactory;
        let mut missing = Vec::new();
        let mut cli = Cli::command();
        cli.build();
        missing_help(&cli, "kvault", &mut missing);
        assert!(missing.is_empty(), "no help text:\n{}", missing.join("\n"));
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
