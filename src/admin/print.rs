//! The admin verbs' only printing code: rows (any `Serialize` struct) as a table, JSON or CSV.
//! Kept in one place so that it can move to the shared output module in one step.
use serde::Serialize;

/// `-o table|json|csv`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    #[default]
    Table,
    Json,
    Csv,
}

/// A row's cells for `columns` (its serialized field names), in that order.
fn cells<T: Serialize>(row: &T, columns: &[&str]) -> anyhow::Result<Vec<(String, String)>> {
    let value = serde_json::to_value(row)?;
    let serde_json::Value::Object(mut map) = value else {
        anyhow::bail!("a row is not an object");
    };
    Ok(columns
        .iter()
        .map(|k| {
            let v = map.remove(*k).unwrap_or(serde_json::Value::Null);
            let cell = match v {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => s,
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|i| match i {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
                other => other.to_string(),
            };
            (k.to_string(), cell)
        })
        .collect())
}

/// `camelCase` to `CAMEL CASE` (table headers) or `camel_case` (CSV headers).
fn header(key: &str, sep: char, upper: bool) -> String {
    let mut out = String::new();
    for c in key.chars() {
        if c.is_ascii_uppercase() && !out.is_empty() {
            out.push(sep);
        }
        if upper {
            out.push(c.to_ascii_uppercase());
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

fn csv_cell(cell: &str) -> String {
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_string()
    }
}

/// Renders `rows`: JSON as is; a table or CSV with `columns` (serialized field names) in that
/// order. An empty table prints `empty`; an empty CSV only its header.
pub fn render<T: Serialize>(
    rows: &[T],
    columns: &[&str],
    output: Output,
    empty: &str,
) -> anyhow::Result<String> {
    if output == Output::Json {
        return Ok(format!("{}\n", serde_json::to_string_pretty(rows)?));
    }
    let table: Vec<Vec<(String, String)>> = rows
        .iter()
        .map(|r| cells(r, columns))
        .collect::<Result<_, _>>()?;
    if table.is_empty() && output == Output::Table {
        return Ok(format!("{empty}\n"));
    }
    let keys: Vec<&str> = columns.to_vec();
    let mut out = String::new();
    match output {
        Output::Csv => {
            let head: Vec<String> = keys.iter().map(|k| header(k, '_', false)).collect();
            out.push_str(&head.join(","));
            out.push('\n');
            for row in &table {
                let line: Vec<String> = row.iter().map(|(_, c)| csv_cell(c)).collect();
                out.push_str(&line.join(","));
                out.push('\n');
            }
        }
        _ => {
            let head: Vec<String> = keys.iter().map(|k| header(k, ' ', true)).collect();
            let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
            for row in &table {
                for (i, (_, c)) in row.iter().enumerate() {
                    if let Some(w) = widths.get_mut(i) {
                        *w = (*w).max(c.chars().count());
                    }
                }
            }
            let line = |cells: Vec<&str>| {
                let last = cells.len().saturating_sub(1);
                let mut l = String::new();
                for (i, c) in cells.into_iter().enumerate() {
                    if i == last {
                        l.push_str(c);
                    } else {
                        let pad = widths[i].saturating_sub(c.chars().count());
                        l.push_str(c);
                        l.push_str(&" ".repeat(pad + 2));
                    }
                }
                l.trim_end().to_string() + "\n"
            };
            out.push_str(&line(head.iter().map(String::as_str).collect()));
            for row in &table {
                out.push_str(&line(row.iter().map(|(_, c)| c.as_str()).collect()));
            }
        }
    }
    Ok(out)
}

/// Prints `rows` to stdout (see [`render`]).
pub fn print<T: Serialize>(
    rows: &[T],
    columns: &[&str],
    output: Output,
    empty: &str,
) -> anyhow::Result<()> {
    print!("{}", render(rows, columns, output, empty)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Row {
        code: &'static str,
        clever_id: Option<&'static str>,
        what_to_do: &'static str,
    }

    #[test]
    fn rows_render_as_table_csv_and_json() {
        let rows = [
            Row {
                code: "A",
                clever_id: Some("x1"),
                what_to_do: "say \"hi\", then go",
            },
            Row {
                code: "Longer",
                clever_id: None,
                what_to_do: "-",
            },
        ];
        let cols = ["code", "cleverId", "whatToDo"];
        let table = render(&rows, &cols, Output::Table, "none").expect("table");
        assert_eq!(
            table,
            "CODE    CLEVER ID  WHAT TO DO\nA       x1         say \"hi\", then go\nLonger             -\n"
        );
        let csv = render(&rows, &cols, Output::Csv, "none").expect("csv");
        assert_eq!(
            csv,
            "code,clever_id,what_to_do\nA,x1,\"say \"\"hi\"\", then go\"\nLonger,,-\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render(&rows, &cols, Output::Json, "none").expect("json"))
                .expect("parses");
        assert_eq!(json[0]["cleverId"], "x1");
        assert_eq!(
            render::<Row>(&[], &cols, Output::Table, "none").expect("empty"),
            "none\n"
        );
        assert_eq!(
            render::<Row>(&[], &cols, Output::Csv, "none").expect("empty"),
            "code,clever_id,what_to_do\n"
        );
    }
}
