//! The only code that writes to the terminal: the policy here (stdout or stderr, colour, JSON, quiet,
//! progress bars), the views in `views` (the plan tables, status rows, change lines, file summaries).
//! Results go to stdout (a table or `--output json`); notes,
//! warnings and errors go to stderr. Colour follows `--color`, `NO_COLOR` and whether stderr is a terminal.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod backups;
mod growth;
pub mod views;

use std::io::{self, BufRead as _, IsTerminal, Write};

use serde::Serialize;

use crate::args::{ColorChoice, GlobalArgs, OutputFormat};

#[derive(Debug, Clone)]
pub struct Printer {
    format: OutputFormat,
    color: bool,
    quiet: bool,
    /// Progress bars: on a terminal, without `--no-progress` and `--quiet`.
    bars: bool,
    /// The results of work nested in another command (the restore drill's deploy) go to stderr as notes,
    /// so stdout holds only the outer command's result.
    nested: bool,
}

/// Live progress of long work, one line per item (indicatif on a terminal; otherwise each finished line is
/// printed once, so logs of a CI run still say what happened).
#[derive(Debug)]
pub struct Progress {
    bars: Option<indicatif::MultiProgress>,
    quiet: bool,
}

/// One line of a `Progress`.
#[derive(Debug)]
pub struct ProgressLine {
    bar: Option<indicatif::ProgressBar>,
    label: String,
    quiet: bool,
}

impl Progress {
    pub fn line(&self, label: &str) -> ProgressLine {
        let bar = self.bars.as_ref().map(|bars| {
            let bar = bars.add(indicatif::ProgressBar::new_spinner());
            let style = indicatif::ProgressStyle::with_template("{spinner} {prefix:<28} {wide_msg} {elapsed:>4}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
            bar.set_style(style);
            bar.set_prefix(label.to_owned());
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        ProgressLine { bar, label: label.to_owned(), quiet: self.quiet }
    }
}

impl ProgressLine {
    /// What the item is doing now.
    pub fn set(&self, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(message.to_owned());
        }
    }

    /// How the item ended; the line stays on screen (or is printed once without a terminal).
    pub fn finish(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.finish_with_message(message.to_owned()),
            None if !self.quiet => eprintln!("  {:<28} {message}", self.label),
            None => {}
        }
    }
}

pub(crate) const YELLOW: &str = "\x1b[33m";
pub(crate) const RED: &str = "\x1b[31m";
pub(crate) const BOLD: &str = "\x1b[1m";
pub(crate) const RESET: &str = "\x1b[0m";

impl Printer {
    pub fn new(global: &GlobalArgs) -> Printer {
        let color = match global.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => !crate::env::no_color() && io::stderr().is_terminal(),
        };
        let bars = !global.quiet && !global.no_progress && io::stderr().is_terminal();
        Printer { format: global.output, color, quiet: global.quiet, bars, nested: false }
    }

    /// A printer for work nested in this command: tables and lines (never JSON) on stderr.
    pub fn nested(&self) -> Printer {
        Printer { format: OutputFormat::Table, nested: true, ..self.clone() }
    }

    /// A group of progress lines on stderr.
    pub fn progress(&self) -> Progress {
        Progress { bars: self.bars.then(indicatif::MultiProgress::new), quiet: self.quiet }
    }

    pub fn is_json(&self) -> bool {
        self.format == OutputFormat::Json
    }

    pub(crate) fn paint(&self, style: &str, text: &str) -> String {
        if self.color { format!("{style}{text}{RESET}") } else { text.to_owned() }
    }

    /// A progress note on stderr (hidden with `--quiet`).
    pub fn note(&self, message: &str) {
        if !self.quiet {
            eprintln!("{message}");
        }
    }

    pub fn warning(&self, message: &str) {
        eprintln!("{} {message}", self.paint(YELLOW, "warning:"));
    }

    /// An error and its causes, one per line.
    pub fn error(&self, error: &anyhow::Error) {
        eprintln!("{} {error}", self.paint(RED, "error:"));
        for cause in error.chain().skip(1) {
            eprintln!("  caused by: {cause}");
        }
    }

    fn stdout(&self, text: &str) -> io::Result<()> {
        if self.nested {
            if !self.quiet {
                eprint!("{text}");
            }
            return Ok(());
        }
        let mut out = io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()
    }

    /// One result line on stdout (for table output).
    pub fn result(&self, line: &str) -> io::Result<()> {
        self.stdout(&format!("{line}\n"))
    }

    pub fn json<T: Serialize>(&self, value: &T) -> io::Result<()> {
        let text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
        self.stdout(&format!("{text}\n"))
    }

    /// Asks the operator to type `answer` to go on (`question` says what will happen): the one place that
    /// reads an answer from the terminal. Off a terminal nobody can answer, and the caller decides (usually a
    /// refusal naming `--yes`).
    pub fn confirm(&self, question: &str, answer: &str) -> io::Result<Confirmation> {
        if !io::stdin().is_terminal() {
            return Ok(Confirmation::NoTerminal);
        }
        self.warning(&format!("{question}; type `{answer}` to confirm:"));
        let mut typed = String::new();
        io::stdin().lock().read_line(&mut typed)?;
        Ok(if typed.trim() == answer { Confirmation::Confirmed } else { Confirmation::Declined })
    }
}

/// What the operator answered to `Printer::confirm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    Confirmed,
    Declined,
    /// stdin is not a terminal: nobody was asked.
    NoTerminal,
}
