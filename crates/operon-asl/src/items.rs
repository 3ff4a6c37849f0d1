//! ItemReader bodies: CSV, JSON and JSONL, parsed in the library (the host only fetches bytes).

use crate::definition::ItemReader;
use crate::error::{Failure, names};
use serde_json::{Map, Value};

/// Parses a reader body into the list of items, keeping at most `max` items.
pub fn parse_items(
    body: &str,
    reader: &ItemReader,
    max: Option<usize>,
) -> Result<Vec<Value>, Failure> {
    let mut items = match reader.input_type.as_str() {
        "CSV" => parse_csv(body, reader, ',')?,
        "TSV" => parse_csv(body, reader, '\t')?,
        "JSONL" => parse_jsonl(body)?,
        _ => parse_json(body)?,
    };
    if let Some(m) = max {
        items.truncate(m);
    }
    Ok(items)
}

fn parse_json(body: &str) -> Result<Vec<Value>, Failure> {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Array(a)) => Ok(a),
        Ok(_) => Err(Failure::new(
            names::ITEM_READER_FAILED,
            "Attempting to map over non-iterable node.",
        )),
        Err(e) => Err(Failure::new(
            names::ITEM_READER_FAILED,
            format!("The item reader could not parse the JSON: {e}"),
        )),
    }
}

fn parse_jsonl(body: &str) -> Result<Vec<Value>, Failure> {
    let mut out = Vec::new();
    for (n, line) in body.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v = serde_json::from_str(line).map_err(|e| {
            Failure::new(
                names::ITEM_READER_FAILED,
                format!("invalid JSON on line {}: {e}", n + 1),
            )
        })?;
        out.push(v);
    }
    Ok(out)
}

fn parse_csv(body: &str, reader: &ItemReader, delim: char) -> Result<Vec<Value>, Failure> {
    let delim = match reader.csv_delimiter.as_str() {
        "SEMICOLON" => ';',
        "PIPE" => '|',
        "TAB" => '\t',
        "SPACE" => ' ',
        _ => delim,
    };
    let mut rows = csv_rows(body, delim);
    let headers: Vec<String> = if reader.csv_header_location == "GIVEN" {
        reader.csv_headers.clone()
    } else if rows.is_empty() {
        return Ok(Vec::new());
    } else {
        rows.remove(0)
    };
    // Each header names a field of the item object, so the names must be
    // distinct, whether given in CSVHeaders or read from the first row.
    let mut seen = std::collections::HashSet::with_capacity(headers.len());
    if !headers.iter().all(|h| seen.insert(h.as_str())) {
        return Err(Failure::new(
            names::ITEM_READER_FAILED,
            "CSV headers cannot contain duplicates.",
        ));
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let mut m = Map::new();
            for (i, h) in headers.iter().enumerate() {
                m.insert(
                    h.clone(),
                    Value::String(row.get(i).cloned().unwrap_or_default()),
                );
            }
            Value::Object(m)
        })
        .collect())
}

/// Splits CSV text into rows of fields (RFC 4180 quoting).
pub fn csv_rows(body: &str, delim: char) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = body.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        any = true;
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => quoted = true,
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
                any = false;
            }
            c if c == delim => row.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    if any {
        row.push(field);
        rows.push(row);
    }
    rows
}
