//! Making site-supplied text safe for each output: XML (JUnit), HTML,
//! Markdown, OpenMetrics label values. Secrets are scrubbed once over each
//! whole rendered document, where it leaves the process (report/mod.rs).

/// Remove ANSI escapes and characters XML 1.0 cannot hold; break `]]>`
/// (it would end a CDATA section). Newlines and tabs are kept.
pub fn xml_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in probes::text::strip_escapes(s).chars() {
        let allowed = matches!(c, '\t' | '\n' | '\r')
            || ('\u{20}'..='\u{D7FF}').contains(&c)
            || ('\u{E000}'..='\u{FFFD}').contains(&c)
            || c >= '\u{10000}';
        // C1 controls are legal XML but discouraged, and never useful here.
        if allowed && !('\u{7f}'..='\u{9f}').contains(&c) {
            out.push(c);
        } else if c != '\u{0}' {
            out.push('\u{FFFD}');
        }
    }
    if out.contains("]]>") {
        out = out.replace("]]>", "]] >");
    }
    out
}

/// One line, XML-safe.
pub fn xml_line(s: &str, max: usize) -> String {
    xml_safe(&probes::text::one_line(s, max))
}

/// Escape for HTML text and attribute values.
pub fn html(s: &str) -> String {
    let s = xml_safe(s);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One line for a Markdown table cell. `_`, `-` and `.` stay as they are:
/// tokens are made of them, and the whole-document scrub must still see a
/// leaked token as one run of characters.
pub fn md_cell(s: &str, max: usize) -> String {
    let s = probes::text::one_line(s, max);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' | '\\' | '`' | '*' | '[' | ']' | '<' | '>' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// A Prometheus label value: backslash, quote and newline escaped.
pub fn label_value(s: &str) -> String {
    let s = probes::text::one_line(s, 200);
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_safe_drops_what_xml_cannot_hold() {
        let s = xml_safe("a\u{1b}[31mred\u{1b}[0m\u{7}\u{0}b ]]> \u{FFFF}\u{85}c\n");
        assert_eq!(s, "ared\u{FFFD}b ]] > \u{FFFD}\u{FFFD}c\n");
    }

    #[test]
    fn html_escapes() {
        assert_eq!(
            html("<a href='x'>&</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"
        );
    }
}
