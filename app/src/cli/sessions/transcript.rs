//! A conversation as a transcript for the terminal: who said what, tool
//! calls and their results, reasoning, placeholders for bytes. Colours
//! only when standard output is a terminal (and `NO_COLOR` is unset).

use std::{collections::HashMap, io::Write};

use serde_json::Value;

/// ANSI styling, or none.
#[derive(Clone, Copy)]
pub struct Style {
    colour: bool,
}

impl Style {
    /// Colours when standard output is a terminal that takes them.
    pub fn detect() -> Self {
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        Self { colour: terminal && !dumb && std::env::var_os("NO_COLOR").is_none() }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.colour { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_owned() }
    }

    pub fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }

    pub fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }

    fn role(self, role: &str) -> String {
        let code = match role {
            "user" => "1;36",
            "assistant" => "1;32",
            _ => "1;35",
        };
        self.paint(code, role)
    }

    fn tool(self, text: &str) -> String {
        self.paint("33", text)
    }

    fn bad(self, text: &str) -> String {
        self.paint("31", text)
    }
}

/// `text` with control characters shown as escapes (`\u{1b}`), so stored
/// text cannot drive the terminal (move the cursor, hide lines, write the
/// clipboard); new lines and tabs stay.
pub fn visible(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' | '\t' => c.to_string(),
            c if c.is_control() => c.escape_unicode().to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// Longest JSON shown inline for a tool's input or result.
const INLINE_JSON: usize = 2000;

/// A JSON value on one line, cut at [`INLINE_JSON`], made [`visible`].
fn compact(value: &Value) -> String {
    let text = visible(&value.to_string());
    match text.char_indices().nth(INLINE_JSON) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// The size of stored bytes (`{"__bytes_encoded__": true, "data": base64}`).
fn size_of(source: &Value) -> Option<u64> {
    let data = source.get("bytes").unwrap_or(source);
    if let Some(b64) = data.get("data").and_then(Value::as_str) {
        return Some((b64.trim_end_matches('=').len() * 3 / 4) as u64);
    }
    data.as_str().map(|s| s.len() as u64).or_else(|| data.as_array().map(|a| a.len() as u64))
}

fn placeholder(kind: &str, block: &Value) -> String {
    let mut parts = vec![kind.to_owned()];
    parts.extend(block.get("name").and_then(Value::as_str).map(|n| format!("“{}”", visible(n))));
    parts.extend(block.get("format").and_then(Value::as_str).map(visible));
    parts.extend(block.get("source").and_then(size_of).map(session_backend::ops::progress::size));
    format!("[{}]", parts.join(", "))
}

/// Writes messages one after another, pairing tool results with the
/// calls they answer.
pub struct Transcript<W: Write> {
    out: W,
    style: Style,
    tools: HashMap<String, String>,
}

impl<W: Write> Transcript<W> {
    pub fn new(out: W, style: Style) -> Self {
        Self { out, style, tools: HashMap::new() }
    }

    /// A heading line (its stored parts made [`visible`] by the caller).
    pub fn heading(&mut self, text: &str) -> std::io::Result<()> {
        writeln!(self.out, "\n{}", self.style.bold(text))
    }

    /// A line as it is (its stored parts made [`visible`] by the caller).
    pub fn line(&mut self, text: &str) -> std::io::Result<()> {
        writeln!(self.out, "{text}")
    }

    /// One message: its id, role and time, then its content indented.
    pub fn message(
        &mut self,
        id: i64,
        message: &Value,
        redacted: bool,
        at: Option<&str>,
    ) -> std::io::Result<()> {
        let role = visible(message.get("role").and_then(Value::as_str).unwrap_or("unknown"));
        let mut header = format!("{} {}", self.style.dim(&format!("[{id}]")), self.style.role(&role));
        if let Some(at) = at {
            header.push_str(&self.style.dim(&format!(" · {}", visible(at))));
        }
        if redacted {
            header.push_str(&self.style.dim(" · redacted"));
        }
        writeln!(self.out, "{header}")?;
        match message.get("content").and_then(Value::as_array) {
            Some(blocks) => {
                for block in blocks {
                    self.block(block)?;
                }
            }
            None => self.indented(&compact(message.get("content").unwrap_or(&Value::Null)))?,
        }
        Ok(())
    }

    /// Text indented under its message (stored parts made [`visible`] by
    /// the caller, before any styling).
    fn indented(&mut self, text: &str) -> std::io::Result<()> {
        for line in text.lines() {
            writeln!(self.out, "    {line}")?;
        }
        Ok(())
    }

    fn block(&mut self, block: &Value) -> std::io::Result<()> {
        let style = self.style;
        if let Some(text) = block.get("text").and_then(Value::as_str) {
            return self.indented(&visible(text));
        }
        if let Some(tool) = block.get("toolUse") {
            let name = visible(tool.get("name").and_then(Value::as_str).unwrap_or("?"));
            if let Some(id) = tool.get("toolUseId").and_then(Value::as_str) {
                self.tools.insert(id.to_owned(), name.clone());
            }
            let input = compact(tool.get("input").unwrap_or(&Value::Null));
            return self.indented(&format!("{} {input}", style.tool(&format!("→ {name}"))));
        }
        if let Some(result) = block.get("toolResult") {
            let id = result.get("toolUseId").and_then(Value::as_str).unwrap_or_default();
            let name = self.tools.get(id).cloned().unwrap_or_else(|| "a tool".to_owned());
            let status = visible(result.get("status").and_then(Value::as_str).unwrap_or("success"));
            let status = if status == "error" { style.bad(&status) } else { status };
            self.indented(&format!("{} ({status})", style.tool(&format!("← {name}"))))?;
            for part in result.get("content").and_then(Value::as_array).into_iter().flatten() {
                match part.get("text").and_then(Value::as_str) {
                    Some(text) => self.indented(&format!("  {}", visible(text)))?,
                    None => self.indented(&format!("  {}", compact(part.get("json").unwrap_or(part))))?,
                }
            }
            return Ok(());
        }
        if let Some(reasoning) = block.get("reasoningContent") {
            let text =
                reasoning.pointer("/reasoningText/text").and_then(Value::as_str).unwrap_or("(redacted)");
            return self.indented(&style.dim(&format!("(reasoning) {}", visible(text))));
        }
        for kind in ["image", "document", "video"] {
            if let Some(inner) = block.get(kind) {
                return self.indented(&style.dim(&placeholder(kind, inner)));
            }
        }
        if block.get("cachePoint").is_some() {
            return Ok(());
        }
        self.indented(&style.dim(&compact(block)))
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
