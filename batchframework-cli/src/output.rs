//! What the command prints: aligned tables and key/value blocks for people, with colour only
//! on a terminal and never with `NO_COLOR` set, or one JSON document for scripts.
//!
//! Commands build their output as text ([`Outcome`]); `main` writes it once, so a closed pipe
//! (`batchframework list | head -1`) ends the command quietly instead of with a panic.

use std::io::IsTerminal;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::CliError;

/// What a command produced: its standard output and its exit code.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) stdout: String,
    pub(crate) exit_code: u8,
}

impl Outcome {
    /// Output of a command that succeeded.
    pub(crate) fn ok(stdout: String) -> Self {
        Outcome {
            stdout,
            exit_code: 0,
        }
    }
}

/// How to print: JSON or text, and whether text may be coloured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Format {
    pub(crate) json: bool,
    color: bool,
}

impl Format {
    /// JSON when asked; colour when stdout is a terminal and `NO_COLOR` is unset or empty
    /// (<https://no-color.org>).
    pub(crate) fn detect(json: bool) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Format {
            json,
            color: !json && !no_color && std::io::stdout().is_terminal(),
        }
    }

    /// `text` in `paint`, or as it is without colour.
    pub(crate) fn paint(&self, text: &str, paint: Paint) -> String {
        if self.color && !text.is_empty() {
            format!("\x1b[{}m{text}\x1b[0m", paint.code())
        } else {
            text.to_owned()
        }
    }

    /// A table as text, its columns aligned by the width of their uncoloured text.
    pub(crate) fn table(&self, table: &Table) -> String {
        let columns = table.headers.len();
        let mut widths: Vec<usize> = table.headers.iter().map(|h| h.chars().count()).collect();
        for row in &table.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.text.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<Cell> = table
            .headers
            .iter()
            .map(|h| Cell::painted(*h, Paint::Bold))
            .collect();
        for row in std::iter::once(&header).chain(&table.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate().take(columns) {
                let pad = widths[i].saturating_sub(cell.text.chars().count());
                let text = match cell.paint {
                    Some(paint) => self.paint(&cell.text, paint),
                    None => cell.text.clone(),
                };
                if i > 0 {
                    line.push_str("  ");
                }
                if table.right.get(i).copied().unwrap_or(false) {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(&text);
                } else {
                    line.push_str(&text);
                    line.push_str(&" ".repeat(pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// `key   value` lines, the values aligned.
    pub(crate) fn fields(&self, fields: &[(&str, Cell)]) -> String {
        let width = fields
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for (key, value) in fields {
            let pad = width - key.chars().count();
            let key = self.paint(key, Paint::Bold);
            let value = match value.paint {
                Some(paint) => self.paint(&value.text, paint),
                None => value.text.clone(),
            };
            out.push_str(&format!("{key}{}  {value}\n", " ".repeat(pad)));
        }
        out
    }
}

/// The few colours the command uses, each for one meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Paint {
    /// Headers and field names.
    Bold,
    /// Successful.
    Green,
    /// Failed.
    Red,
    /// Running, paused, waiting: needs attention but is not an error.
    Yellow,
    /// Nothing to show (`-`).
    Dim,
}

impl Paint {
    fn code(self) -> &'static str {
        match self {
            Paint::Bold => "1",
            Paint::Green => "32",
            Paint::Red => "31",
            Paint::Yellow => "33",
            Paint::Dim => "2",
        }
    }
}

/// One table cell or field value, and its colour, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cell {
    text: String,
    paint: Option<Paint>,
}

impl Cell {
    /// Plain text.
    pub(crate) fn plain(text: impl Into<String>) -> Self {
        Cell {
            text: text.into(),
            paint: None,
        }
    }

    /// Coloured text (on a terminal).
    pub(crate) fn painted(text: impl Into<String>, paint: Paint) -> Self {
        Cell {
            text: text.into(),
            paint: Some(paint),
        }
    }

    /// `-` for nothing, dimmed.
    pub(crate) fn none() -> Self {
        Cell::painted("-", Paint::Dim)
    }

    /// A value, or `-`.
    pub(crate) fn opt(value: Option<impl Into<String>>) -> Self {
        value.map_or_else(Cell::none, Cell::plain)
    }

    /// A timestamp, or `-`.
    pub(crate) fn time(value: Option<DateTime<Utc>>) -> Self {
        Cell::opt(value.map(format_time))
    }
}

/// Rows under headers; columns are left-aligned unless marked right-aligned (numbers).
#[derive(Debug, Default)]
pub(crate) struct Table {
    headers: Vec<&'static str>,
    right: Vec<bool>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    /// A table with these columns; a header ending in `>` is right-aligned (the `>` is not
    /// shown).
    pub(crate) fn new(headers: &[&'static str]) -> Self {
        Table {
            headers: headers.iter().map(|h| h.trim_end_matches('>')).collect(),
            right: headers.iter().map(|h| h.ends_with('>')).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub(crate) fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }
}

/// `2026-01-31T12:00:00Z`: UTC to the second, the form the time filters accept.
pub(crate) fn format_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// One JSON document, pretty-printed, as a command's whole output.
pub(crate) fn json(value: &impl Serialize) -> Result<String, CliError> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::failed(format!("cannot write the JSON output: {e}")))?;
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_right_align_numbers() {
        let mut table = Table::new(&["NAME", "COUNT>"]);
        table.row(vec![Cell::plain("default"), Cell::plain("3")]);
        table.row(vec![Cell::plain("x"), Cell::painted("1000+", Paint::Red)]);
        let plain = Format {
            json: false,
            color: false,
        };
        assert_eq!(
            plain.table(&table),
            "NAME     COUNT\ndefault      3\nx        1000+\n"
        );
        let colored = Format {
            json: false,
            color: true,
        };
        let text = colored.table(&table);
        assert!(text.contains("\x1b[31m1000+\x1b[0m"), "{text:?}");
        assert!(text.contains("\x1b[1mNAME\x1b[0m     "), "{text:?}");
    }
}
