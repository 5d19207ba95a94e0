//! `replay export`: the events a filter selects, oldest first, as JSON Lines (one object per
//! line, the shape of `GET /api/events`) or CSV, streamed to stdout or a file in constant memory.

use std::fs::File;
use std::io::{BufWriter, ErrorKind, Write};
use std::path::PathBuf;
use std::time::Instant;

use idledger::app::Environment;
use idledger::history::Logged;
use idledger::http::management::events::EventResponse;

use crate::ReplayError;
use crate::scan::{self, Consumer, Filter};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    filter: Filter,
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    format: Format,
    /// Write to this file instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// At the end, print to stderr how many events were written, how fast, and the process's
    /// peak resident memory.
    #[arg(long)]
    stats: bool,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// One JSON object per line.
    Jsonl,
    /// RFC 4180, a header line, the payload as a JSON text column.
    Csv,
}

const CSV_HEADER: &str = "position,created_at,occurred_at,stream_type,stream_id,sequence,type,\
     version,subject_id,actor_kind,actor_id,ip,user_agent,request_id,erased,payload\n";

struct Exporter {
    out: BufWriter<Box<dyn Write + Send>>,
    format: Format,
    /// One CSV line, reused.
    line: String,
}

/// Appends one CSV field, quoted when it holds a separator, a quote or a line break.
fn field(line: &mut String, value: &str) {
    if value.contains([',', '"', '\n', '\r']) {
        line.push('"');
        line.push_str(&value.replace('"', "\"\""));
        line.push('"');
    } else {
        line.push_str(value);
    }
}

impl Consumer for Exporter {
    fn consume(&mut self, logged: Logged) -> Result<(), ReplayError> {
        let occurred_at = scan::rfc3339(logged.event.metadata.occurred_at);
        let event = EventResponse::from(logged);
        match self.format {
            Format::Jsonl => {
                serde_json::to_writer(&mut self.out, &event)
                    .map_err(|e| ReplayError::Output(e.into()))?;
                self.out.write_all(b"\n")?;
            }
            Format::Csv => {
                let line = &mut self.line;
                line.clear();
                let payload = event.payload.to_string();
                let columns = [
                    event.position.to_string(),
                    event.created_at.to_string(),
                    occurred_at,
                    event.stream_type,
                    event.stream_id,
                    event.sequence.to_string(),
                    event.event_type,
                    event.version.to_string(),
                    event.subject_id.unwrap_or_default(),
                    event.actor.kind.to_owned(),
                    event.actor.id.unwrap_or_default(),
                    event.ip.unwrap_or_default(),
                    event.user_agent.unwrap_or_default(),
                    event.request_id.unwrap_or_default(),
                    event.erased.to_string(),
                    payload,
                ];
                for (index, value) in columns.iter().enumerate() {
                    if index > 0 {
                        line.push(',');
                    }
                    field(line, value);
                }
                line.push('\n');
                self.out.write_all(line.as_bytes())?;
            }
        }
        Ok(())
    }
}

/// Peak resident memory of this process so far, in KiB (`VmHWM`).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

pub async fn run(environment: &Environment, args: Args) -> Result<(), ReplayError> {
    let sink: Box<dyn Write + Send> = match &args.out {
        Some(path) => Box::new(File::create(path)?),
        None => Box::new(std::io::stdout()),
    };
    let mut out = BufWriter::with_capacity(1 << 20, sink);
    if args.format == Format::Csv {
        out.write_all(CSV_HEADER.as_bytes())?;
    }
    let exporter = Exporter {
        out,
        format: args.format,
        line: String::new(),
    };
    let started = Instant::now();
    let (count, mut exporter) = match scan::scan(environment, &args.filter, exporter).await {
        // A reader that closed the pipe (`| head`) has all it wanted.
        Err(ReplayError::Output(error)) if error.kind() == ErrorKind::BrokenPipe => return Ok(()),
        other => other?,
    };
    match exporter.out.flush() {
        Err(error) if error.kind() == ErrorKind::BrokenPipe => return Ok(()),
        other => other?,
    }
    if args.stats {
        let seconds = started.elapsed().as_secs_f64();
        eprintln!(
            "exported {count} events in {seconds:.2} s ({:.0} events/s); peak RSS {:.1} MiB",
            count as f64 / seconds.max(1e-9),
            peak_rss_kib().unwrap_or(0) as f64 / 1024.0
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        let mut line = String::new();
        field(&mut line, "plain");
        line.push(',');
        field(&mut line, r#"{"a":"b,c"}"#);
        line.push(',');
        field(&mut line, "two\nlines");
        assert_eq!(line, "plain,\"{\"\"a\"\":\"\"b,c\"\"}\",\"two\nlines\"");
    }
}
