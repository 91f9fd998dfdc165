//! The `table` format: comfy-table sized to the terminal, long results shown as head and tail.

use std::collections::VecDeque;
use std::io::Write;

use comfy_table::{Cell, ContentArrangement, Table, presets};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};

use super::formatters;

/// How a table is drawn: the width to fit and how many rows to show before eliding.
#[derive(Debug, Clone, Copy)]
pub struct TableStyle {
    /// Terminal width in columns; `None` draws at natural width (not a terminal).
    pub width: Option<u16>,
    /// At most this many rows are drawn: half from the head, half from the tail.
    pub max_rows: usize,
}

impl Default for TableStyle {
    fn default() -> Self {
        TableStyle {
            width: None,
            max_rows: 40,
        }
    }
}

/// Rows kept for drawing: the first `max_rows/2` and a rolling window of the last ones.
pub struct TableBuffer {
    style: TableStyle,
    head: Vec<Vec<String>>,
    tail: VecDeque<Vec<String>>,
    total: usize,
}

impl TableBuffer {
    pub fn new(style: TableStyle) -> Self {
        TableBuffer {
            style,
            head: vec![],
            tail: VecDeque::new(),
            total: 0,
        }
    }

    fn head_rows(&self) -> usize {
        self.style.max_rows.div_ceil(2).max(1)
    }

    fn tail_rows(&self) -> usize {
        self.style.max_rows / 2
    }

    pub fn push(&mut self, batch: &RecordBatch) {
        let Ok(cells) = formatters(batch, "NULL") else {
            return;
        };
        for row in 0..batch.num_rows() {
            self.total += 1;
            let values = || {
                cells
                    .iter()
                    .map(|f| f.value(row).to_string())
                    .collect::<Vec<_>>()
            };
            if self.head.len() < self.head_rows() {
                self.head.push(values());
            } else if self.tail_rows() > 0 {
                if self.tail.len() == self.tail_rows() {
                    self.tail.pop_front();
                }
                self.tail.push_back(values());
            }
        }
    }

    pub fn render(self, schema: &SchemaRef, out: &mut dyn Write) -> std::io::Result<()> {
        if schema.fields().is_empty() {
            return Ok(());
        }
        let mut table = Table::new();
        table.load_style(presets::UTF8_FULL_CONDENSED);
        match self.style.width {
            Some(width) => {
                table.set_content_arrangement(ContentArrangement::Dynamic);
                table.set_width(width);
            }
            None => {
                table.set_content_arrangement(ContentArrangement::Disabled);
            }
        }
        table.set_header(schema.fields().iter().map(|f| Cell::new(f.name())));
        let shown = self.head.len() + self.tail.len();
        let elided = self.total > shown;
        for row in &self.head {
            table.add_row(row.clone());
        }
        if elided {
            table.add_row(schema.fields().iter().map(|_| "…").collect::<Vec<_>>());
        }
        for row in &self.tail {
            table.add_row(row.clone());
        }
        for (i, field) in schema.fields().iter().enumerate() {
            let numeric = field.data_type().is_numeric()
                || matches!(
                    field.data_type(),
                    DataType::Decimal128(_, _) | DataType::Decimal256(_, _)
                );
            if numeric && let Some(col) = table.column_mut(i) {
                col.set_cell_alignment(comfy_table::CellAlignment::Right);
            }
        }
        writeln!(out, "{table}")?;
        let noun = if self.total == 1 { "row" } else { "rows" };
        if elided {
            writeln!(out, "{} {noun} ({shown} shown)", self.total)
        } else {
            writeln!(out, "{} {noun}", self.total)
        }
    }
}
