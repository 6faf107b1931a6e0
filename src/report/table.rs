//! The colours × aspects table of observed roles.

use super::style::Style;
use crate::model::colour::{Aspect, Colour};
use crate::model::roles::{Cell, RoleTable, Verdict};

pub fn roles_table(t: &RoleTable, style: Style) -> String {
    roles_table_with_health(t, style, None)
}

/// The table with a `health` column: per colour, what its probes found.
pub fn roles_table_with_health(
    t: &RoleTable,
    style: Style,
    health: Option<&dyn Fn(Colour) -> String>,
) -> String {
    let aspects: Vec<Aspect> = t.aspects();
    let mut rows: Vec<Vec<String>> = vec![std::iter::once("colour".to_string())
        .chain(aspects.iter().map(|a| a.as_str().to_string()))
        .chain(health.map(|_| "health".to_string()))
        .collect()];
    for c in Colour::ALL {
        let mut row = vec![c.as_str().to_string()];
        for a in &aspects {
            row.push(t.cell(c, *a).label().to_string());
        }
        if let Some(h) = health {
            row.push(h(c));
        }
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (n, row) in rows.iter().enumerate() {
        out.push_str("  ");
        for (i, cell) in row.iter().enumerate() {
            // The last column is not padded: no trailing blanks.
            let padded = if i + 1 < row.len() {
                format!("{:<w$}", cell, w = widths[i])
            } else {
                cell.clone()
            };
            let shown = if n == 0 {
                style.bold(&padded)
            } else if cell == Cell::Split.label() {
                style.bold_red(&padded)
            } else {
                padded
            };
            out.push_str(&shown);
            if i + 1 < row.len() {
                out.push_str("  ");
            }
        }
        out.push('\n');
    }
    out
}

/// One line saying whether the roles agree.
pub fn verdict_line(t: &RoleTable, style: Style) -> String {
    match t.verdict() {
        Verdict::Consistent { prod } => format!(
            "consistent: {prod} holds prod, {} holds dev\n",
            prod.other()
        ),
        Verdict::Split { problems } => {
            let mut s = style.bold_red("SPLIT STATE: the observed roles disagree\n");
            for p in problems {
                s.push_str(&format!("  - {}\n", crate::mask::mask_text(&p)));
            }
            s
        }
    }
}
