//! What every client subcommand shares: the connection flags, the output format, and reading
//! and printing values, tags, times and backups.

use crate::client::{ClientConfig, VaultClient};
use crate::wire::Tags;
use clap::{Args, ValueEnum};
use serde::Serialize;
use std::io::{Read, Write};
use std::path::PathBuf;
use zeroize::Zeroizing;

/// `println!` that hands back the write's error instead of panicking: a closed standard
/// output (`kvault … | head -1`) is an `io::ErrorKind::BrokenPipe` error the command returns
/// and `cli::main` ends quietly on.
macro_rules! outln {
    () => {
        $crate::cli::common::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::common::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` with the error handed back, as [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::common::write_stdout(format_args!($($arg)*))
    };
}

pub(crate) use {out, outln};

/// Writes to standard output, returning the error (never panicking on it).
pub(crate) fn write_stdout(args: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    write_bytes(args.to_string().as_bytes())
}

/// Writes bytes to standard output and flushes them, returning the error.
pub(crate) fn write_bytes(bytes: &[u8]) -> anyhow::Result<()> {
    let mut o = std::io::stdout().lock();
    o.write_all(bytes)?;
    o.flush()?;
    Ok(())
}

#[derive(Debug, Clone, Args)]
pub(crate) struct Connection {
    /// The vault URL.
    #[arg(long, env = "KVAULT_URL", global = true)]
    url: Option<String>,
    /// A bearer token. Hidden from help and usage lines: a token on the command line shows
    /// up in `ps` and shell history; set KVAULT_TOKEN or use --token-file instead.
    #[arg(
        long,
        env = "KVAULT_TOKEN",
        hide = true,
        hide_env_values = true,
        global = true
    )]
    token: Option<String>,
    /// A file holding the bearer token (or set KVAULT_TOKEN in the environment).
    #[arg(long, env = "KVAULT_TOKEN_FILE", global = true)]
    token_file: Option<PathBuf>,
    /// CA bundle to trust for the vault's certificate.
    #[arg(long, env = "KVAULT_CA_FILE", global = true)]
    ca_file: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "human", global = true)]
    pub(crate) output: Output,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(crate) enum Output {
    Human,
    Json,
}

pub(crate) fn parse_tag(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("'{s}' is not KEY=VALUE"))
}

pub(crate) fn tags(t: Vec<(String, String)>) -> Option<Tags> {
    (!t.is_empty()).then(|| t.into_iter().collect())
}

impl Connection {
    pub(crate) fn client(&self) -> anyhow::Result<VaultClient> {
        let url = self
            .url
            .clone()
            .ok_or_else(|| anyhow::anyhow!("no vault URL: set KVAULT_URL or pass --url"))?;
        let token = match (&self.token, &self.token_file) {
            (_, Some(f)) => Zeroizing::new(
                std::fs::read_to_string(f)
                    .map_err(|e| anyhow::anyhow!("reading token file {}: {e}", f.display()))?
                    .trim()
                    .to_string(),
            ),
            (Some(t), None) => Zeroizing::new(t.clone()),
            (None, None) => anyhow::bail!(
                "no token: set KVAULT_TOKEN or KVAULT_TOKEN_FILE, or pass --token-file"
            ),
        };
        Ok(VaultClient::new(ClientConfig {
            url,
            token,
            ca_file: self.ca_file.clone(),
        })?)
    }
}

/// Writes a backup blob to `file`, or prints it when there is none; returns the file.
pub(crate) fn write_backup<'a>(
    blob: &str,
    file: Option<&'a PathBuf>,
) -> anyhow::Result<Option<&'a PathBuf>> {
    match file {
        Some(p) => {
            std::fs::write(p, blob.as_bytes())
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", p.display()))?;
            Ok(Some(p))
        }
        None => {
            outln!("{blob}")?;
            Ok(None)
        }
    }
}

pub(crate) fn read_input(file: Option<&PathBuf>) -> anyhow::Result<Zeroizing<String>> {
    let mut buf = Zeroizing::new(String::new());
    match file {
        Some(p) if p.as_os_str() != "-" => {
            *buf = std::fs::read_to_string(p)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()))?;
        }
        _ => {
            std::io::stdin().read_to_string(&mut buf)?;
        }
    }
    Ok(buf)
}

/// The value read from standard input with exactly one trailing line ending ("\n" or
/// "\r\n") removed: `echo x | kvault secret set s` stores "x". Only one: a value that ends
/// in blank lines keeps all but the last line ending.
pub(crate) fn trim_one_newline(mut s: String) -> String {
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    s
}

/// A secret value: `--value`/the argument as given, `--file PATH` byte for byte, standard
/// input (no value and no file, or `--file -`) less one trailing line ending.
pub(crate) fn secret_value(
    value: Option<String>,
    file: Option<&PathBuf>,
) -> anyhow::Result<Zeroizing<String>> {
    match (value, file) {
        (Some(v), None) => Ok(Zeroizing::new(v)),
        (Some(_), Some(_)) => anyhow::bail!("give the value or --file, not both"),
        (None, Some(p)) if p.as_os_str() != "-" => read_input(Some(p)),
        (None, _) => {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                eprintln!("kvault: reading the value from standard input (end it with Ctrl-D)");
            }
            let mut raw = read_input(None)?;
            Ok(Zeroizing::new(trim_one_newline(std::mem::take(&mut *raw))))
        }
    }
}

/// How the time flags (`--nbf`, `--exp`) are written, for their help text.
pub(crate) const TIME_FORMS: &str = "an RFC 3339 timestamp (2030-01-31T12:00:00Z), a date \
    (2030-01-31, midnight UTC), a duration from now (90d, 12h, 30m, 45s; a leading + is \
    allowed), or Unix seconds (1893456000)";

/// A time flag's value as Unix seconds: an RFC 3339 timestamp, a date (midnight UTC), a
/// duration from now (`90d`, `12h`, `+30m`), or Unix seconds (`1893456000`).
pub(crate) fn parse_time(s: &str) -> Result<i64, String> {
    parse_time_at(s, crate::clock::SystemClock.now_secs())
}

fn parse_time_at(s: &str, now: i64) -> Result<i64, String> {
    use k8s_openapi::jiff;
    let s = s.trim();
    let bad = || format!("'{s}' is not a time: give {TIME_FORMS}");
    if let Some(rel) = s.strip_prefix('+') {
        let d = crate::clock::parse_duration(rel).map_err(|_| bad())?;
        return Ok(now.saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)));
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<i64>().map_err(|_| bad());
    }
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t.as_second());
    }
    // A date alone (YYYY-MM-DD); a date and time without an offset is refused, not read
    // in some time zone.
    if s.len() == 10
        && let Ok(d) = s.parse::<jiff::civil::Date>()
    {
        return d
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp().as_second())
            .map_err(|_| bad());
    }
    if s.ends_with(['s', 'm', 'h', 'd']) {
        let d = crate::clock::parse_duration(s).map_err(|_| bad())?;
        return Ok(now.saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)));
    }
    Err(bad())
}

pub(crate) fn time(t: Option<i64>) -> String {
    t.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "-".into())
}

pub(crate) fn print_json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(v)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_timestamps_dates_durations_or_unix_seconds() {
        let now = 1_800_000_000;
        for (input, want) in [
            ("1893456000", 1_893_456_000),
            ("0", 0),
            ("2030-01-01T00:00:00Z", 1_893_456_000),
            ("2030-01-01T01:00:00+01:00", 1_893_456_000),
            ("2030-01-01T00:00:00.5Z", 1_893_456_000),
            ("2030-01-01", 1_893_456_000),
            ("90d", now + 90 * 86_400),
            ("12h", now + 12 * 3600),
            ("+30m", now + 1800),
            ("+15", now + 15),
            ("45s", now + 45),
            (" 1h ", now + 3600),
        ] {
            assert_eq!(parse_time_at(input, now), Ok(want), "{input}");
        }
        for bad in [
            "",
            "soon",
            "-5",
            "2030-13-01",
            "12x",
            "+",
            "1.5h",
            "2030-01-01T00:00:00",
        ] {
            let err = parse_time_at(bad, now).unwrap_err();
            assert!(err.contains("RFC 3339"), "{bad}: {err}");
        }
    }

    #[test]
    fn stdin_values_lose_exactly_one_line_ending() {
        for (input, stored) in [
            ("x\n", "x"),
            ("x\r\n", "x"),
            ("x", "x"),
            ("x\n\n", "x\n"),
            ("x\r\n\r\n", "x\r\n"),
            ("\n", ""),
            ("a\nb\n", "a\nb"),
            ("x\r", "x\r"),
        ] {
            assert_eq!(trim_one_newline(input.to_string()), stored, "{input:?}");
        }
    }
}
