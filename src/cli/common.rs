//! What every client subcommand shares: the connection flags, the output format, and reading
//! and printing values, tags, times and backups.

use crate::client::{ClientConfig, RetryPolicy, VaultClient};
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
    /// Output format: human text, the API's JSON, the same as YAML, a bordered table, or
    /// tab-separated values with a header line.
    #[arg(short = 'o', long, value_enum, default_value = "human", global = true)]
    pub(crate) output: Output,
    /// Tries in all for a request the vault answers 429 or 503 (not processed, so safe to
    /// send again): the wait is its Retry-After (at most 30 s), else an exponential backoff
    /// with jitter. 1: no retries.
    #[arg(
        long,
        env = "KVAULT_RETRIES",
        default_value_t = 3,
        value_parser = clap::value_parser!(u32).range(1..=10),
        global = true
    )]
    retries: u32,
    /// Print only this member of the answer (dotted: value, attributes.exp; one line per
    /// item of a list); a string prints bare.
    #[arg(long, global = true)]
    pub(crate) field: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(crate) enum Output {
    /// Text for people.
    Human,
    /// The API's JSON, pretty-printed.
    Json,
    /// The API's JSON as YAML.
    Yaml,
    /// A bordered table: one row per item (one row for a single object).
    Table,
    /// Tab-separated values under a header line; tabs, newlines and backslashes in a value
    /// are written `\t`, `\n`, `\r` and `\\`.
    Tsv,
}

/// The output format and field selector of this run, set once by `cli::main` from the
/// command line (the print helpers read it; most commands' printing has no `Connection`).
static SELECTION: std::sync::OnceLock<(Output, Option<String>)> = std::sync::OnceLock::new();

pub(crate) fn select_output(output: Output, field: Option<String>) {
    let _ = SELECTION.set((output, field));
}

fn selection() -> (Output, Option<&'static str>) {
    SELECTION
        .get()
        .map_or((Output::Human, None), |(o, f)| (*o, f.as_deref()))
}

impl Output {
    /// Whether the answer prints as data (JSON, YAML, a table, TSV or a selected field), not
    /// as text: through [`print_json`], [`print_list`] or [`print_record`].
    pub(crate) fn structured(self) -> bool {
        self != Output::Human || selection().1.is_some()
    }
}

/// One column of a listing: its header and how an item's cell reads.
pub(crate) type Column<T> = (&'static str, fn(&T) -> String);

/// Prints a listing as the run's output format asks: the items themselves as JSON, YAML or
/// `--field`; otherwise one row per item under `columns` (aligned text, a table or TSV).
pub(crate) fn print_list<T: Serialize>(items: &[T], columns: &[Column<T>]) -> anyhow::Result<()> {
    let (output, field) = selection();
    if field.is_some() || matches!(output, Output::Json | Output::Yaml) {
        return print_json(&items);
    }
    let header: Vec<&str> = columns.iter().map(|c| c.0).collect();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| columns.iter().map(|c| (c.1)(i)).collect())
        .collect();
    out!("{}", render_rows(output, &header, &rows))
}

/// Prints one object: itself as JSON, YAML or `--field`; as text, `name: value` lines (a
/// field without a value left out); as a table or TSV, one row under the field names.
pub(crate) fn print_record<T: Serialize>(
    v: &T,
    fields: &[(&str, Option<String>)],
) -> anyhow::Result<()> {
    let (output, field) = selection();
    if field.is_some() || matches!(output, Output::Json | Output::Yaml) {
        return print_json(v);
    }
    if output == Output::Human {
        let width = fields.iter().map(|f| f.0.len()).max().unwrap_or(0) + 2;
        let mut text = String::new();
        for (name, value) in fields {
            if let Some(value) = value {
                text.push_str(&format!("{:<width$}{value}\n", format!("{name}:")));
            }
        }
        return out!("{text}");
    }
    let header: Vec<&str> = fields.iter().map(|f| f.0).collect();
    let row: Vec<String> = fields
        .iter()
        .map(|f| f.1.clone().unwrap_or_default())
        .collect();
    out!("{}", render_rows(output, &header, &[row]))
}

/// Rows under a header: aligned columns (human), a bordered table, or TSV (JSON and YAML
/// never come here; they print the answer itself).
fn render_rows(output: Output, header: &[&str], rows: &[Vec<String>]) -> String {
    match output {
        Output::Table => {
            let mut t = comfy_table::Table::new();
            t.set_header(header.iter().map(|h| h.to_uppercase()));
            for r in rows {
                t.add_row(r);
            }
            format!("{t}\n")
        }
        Output::Tsv => {
            let mut text = header.join("\t");
            text.push('\n');
            for r in rows {
                let cells: Vec<String> = r.iter().map(|c| tsv_escape(c)).collect();
                text.push_str(&cells.join("\t"));
                text.push('\n');
            }
            text
        }
        Output::Human | Output::Json | Output::Yaml => {
            let header: Vec<String> = header.iter().map(|h| h.to_uppercase()).collect();
            let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
            for r in rows {
                for (w, c) in widths.iter_mut().zip(r) {
                    *w = (*w).max(c.chars().count());
                }
            }
            let line = |cells: &[String]| {
                let last = cells.len().saturating_sub(1);
                let mut l = String::new();
                for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
                    if i == last {
                        l.push_str(c);
                    } else {
                        l.push_str(&format!("{c:<w$}  "));
                    }
                }
                l.push('\n');
                l
            };
            let mut text = line(&header);
            for r in rows {
                text.push_str(&line(r));
            }
            text
        }
    }
}

/// A TSV cell: tab, line ending and backslash escaped, so one value stays one cell.
fn tsv_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\\' => o.push_str("\\\\"),
            '\t' => o.push_str("\\t"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            c => o.push(c),
        }
    }
    o
}

/// An answer with no columns of its own as rows: a list's objects one per row, an object as
/// one row, each under its top-level members (nested ones as compact JSON).
fn json_rows(v: &serde_json::Value) -> (Vec<String>, Vec<Vec<String>>) {
    let items: Vec<&serde_json::Value> = match v {
        serde_json::Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let mut header: Vec<String> = Vec::new();
    for i in &items {
        match i {
            serde_json::Value::Object(m) => {
                for k in m.keys() {
                    if !header.contains(k) {
                        header.push(k.clone());
                    }
                }
            }
            _ if header.is_empty() => header.push("value".into()),
            _ => {}
        }
    }
    let cell = |v: Option<&serde_json::Value>| match v {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let rows = items
        .iter()
        .map(|i| match i {
            serde_json::Value::Object(m) => header.iter().map(|h| cell(m.get(h))).collect(),
            other => vec![cell(Some(other))],
        })
        .collect();
    (header, rows)
}

/// The member `path` (dotted) of `v`; of each item when `v` is a list.
fn select<'a>(v: &'a serde_json::Value, path: &str) -> Option<Vec<&'a serde_json::Value>> {
    if let serde_json::Value::Array(items) = v {
        return items.iter().map(|i| select_one(i, path)).collect();
    }
    select_one(v, path).map(|x| vec![x])
}

fn select_one<'a>(v: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    path.split('.').try_fold(v, |v, key| v.get(key))
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
        })?
        .with_retries(RetryPolicy {
            attempts: self.retries,
            ..RetryPolicy::default()
        }))
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

/// Prints an answer as the run's output format asks: JSON (also for human output, where a
/// command has no text form), YAML, a table or TSV of its top-level members, or only the
/// `--field` member.
pub(crate) fn print_json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    let (output, field) = selection();
    if let Some(field) = field {
        let value = serde_json::to_value(v)?;
        let picked = select(&value, field)
            .ok_or_else(|| anyhow::anyhow!("the answer has no field '{field}'"))?;
        for p in picked {
            match p {
                serde_json::Value::String(s) => outln!("{s}")?,
                other => outln!("{other}")?,
            }
        }
        return Ok(());
    }
    match output {
        Output::Yaml => out!("{}", serde_saphyr::to_string(v)?),
        Output::Table | Output::Tsv => {
            let (header, rows) = json_rows(&serde_json::to_value(v)?);
            let header: Vec<&str> = header.iter().map(String::as_str).collect();
            out!("{}", render_rows(output, &header, &rows))
        }
        Output::Human | Output::Json => outln!("{}", serde_json::to_string_pretty(v)?),
    }
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
    fn fields_are_selected_by_dotted_path_in_each_item() {
        let v = serde_json::json!({"value": "s", "attributes": {"exp": 5}});
        assert_eq!(select(&v, "value"), Some(vec![&serde_json::json!("s")]));
        assert_eq!(
            select(&v, "attributes.exp"),
            Some(vec![&serde_json::json!(5)])
        );
        assert_eq!(select(&v, "nope"), None);
        let list = serde_json::json!([{"id": "a"}, {"id": "b"}]);
        assert_eq!(select(&list, "id").map(|x| x.len()), Some(2));
    }

    #[test]
    fn tsv_rows_escape_tabs_and_line_endings_and_tables_have_borders() {
        let header = ["name", "note"];
        let rows = vec![vec!["a".to_string(), "x\ty\nz\\w\r".to_string()]];
        assert_eq!(
            render_rows(Output::Tsv, &header, &rows),
            "name\tnote\na\tx\\ty\\nz\\\\w\\r\n"
        );
        let table = render_rows(Output::Table, &header, &rows);
        assert!(table.contains("| NAME | NOTE"), "{table}");
        assert!(table.lines().any(|l| l.starts_with("| a ")), "{table}");
        let human = render_rows(
            Output::Human,
            &["name", "n"],
            &[vec!["long-name".into(), "1".into()]],
        );
        assert_eq!(human, "NAME       N\nlong-name  1\n");
    }

    #[test]
    fn answers_without_columns_become_rows_of_their_members() {
        let v = serde_json::json!([{"id": "a", "attributes": {"exp": 5}}, {"id": "b", "x": null}]);
        let (header, rows) = json_rows(&v);
        assert_eq!(header, ["attributes", "id", "x"]);
        assert_eq!(rows[0], ["{\"exp\":5}", "a", ""]);
        assert_eq!(rows[1], ["", "b", ""]);
        let (header, rows) = json_rows(&serde_json::json!({"value": true}));
        assert_eq!(
            (header, rows),
            (vec!["value".to_string()], vec![vec!["true".to_string()]])
        );
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
