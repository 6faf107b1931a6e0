//! Markdown's syntax for text that must stay text: escaped inline text,
//! code spans and fenced blocks whose fence no content can close, GFM
//! tables whose cells no `|` can split. Pure; what it is given is already
//! masked (`crate::mask`), and escaping only adds backslashes and fences.

/// Inline text: every character Markdown (CommonMark and GFM, GitHub's
/// mentions and math too) could read as syntax is backslash-escaped, line
/// ends become spaces, and a start that could open a block (a list item, a
/// heading, a quote, a rule) is escaped. Safe in a paragraph, a list item,
/// a heading and a table cell. Blanks around it are dropped.
///
/// Left as they are: `_` between letters or digits (`SECRET_KEY`: an
/// underscore inside a word never opens or closes emphasis), `!` (an image
/// needs the `[` that is escaped), `>` inside the line (a quote needs it
/// first, an HTML tag the `<` that is escaped).
pub fn text(s: &str) -> String {
    let s = one_line(s);
    // Blanks at the start could make an indented code block of it.
    let s: Vec<char> = s.trim_matches([' ', '\t']).chars().collect();
    let mut out = String::with_capacity(s.len() + 8);
    for (i, &c) in s.iter().enumerate() {
        let word = |j: Option<usize>| {
            j.and_then(|j| s.get(j))
                .is_some_and(|c| c.is_alphanumeric())
        };
        let escape = match c {
            '\\' | '`' | '*' | '[' | ']' | '<' | '|' | '~' | '&' | '#' | '$' | '@' => true,
            '_' => !(word(i.checked_sub(1)) && word(Some(i + 1))),
            '>' | '-' | '+' | '=' => i == 0,
            _ => false,
        };
        if escape {
            out.push('\\');
        }
        out.push(c);
    }
    // `1. ` and `1) ` open an ordered list.
    let digits = out.bytes().take_while(u8::is_ascii_digit).count();
    let rest = &out[digits..];
    if digits > 0
        && rest.starts_with(['.', ')'])
        && rest[1..]
            .chars()
            .next()
            .is_none_or(|c| c == ' ' || c == '\t')
    {
        out.insert(digits, '\\');
    }
    out
}

/// A code span of `s` (one line): the backtick fence is longer than any run
/// of backticks in it, and padded with a space where `s` starts or ends
/// with a backtick (CommonMark strips one such space on each side).
pub fn code(s: &str) -> String {
    let s = one_line(s);
    if s.is_empty() {
        return String::new();
    }
    let fence = "`".repeat(longest_run(&s, '`') + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') || (s.starts_with(' ') && s.ends_with(' '))
    {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{s}{pad}{fence}")
}

/// A fenced code block with `info` (one word of ours, e.g. `diff`): the
/// fence is backticks, at least three and more than the longest run of
/// backticks anywhere in `content`, so no line of it can close the block.
pub fn fenced(info: &str, content: &str) -> String {
    let fence = "`".repeat((longest_run(content, '`') + 1).max(3));
    let mut out = format!("{fence}{info}\n{content}");
    if !content.is_empty() && !content.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&fence);
    out.push('\n');
    out
}

/// A GFM table of plain (masked) texts, each cell escaped as [`text`]:
/// its `|` as `\|`, which GFM reads as a pipe of the cell, not a border.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let line = |cells: &mut dyn Iterator<Item = &str>| -> String {
        let mut l = String::from("|");
        for c in cells {
            l.push(' ');
            l.push_str(&text(c));
            l.push_str(" |");
        }
        l.push('\n');
        l
    };
    let mut out = line(&mut header.iter().copied());
    out.push('|');
    for _ in header {
        out.push_str("---|");
    }
    out.push('\n');
    for r in rows {
        out.push_str(&line(&mut r.iter().map(String::as_str)));
    }
    out
}

/// Line ends as spaces.
fn one_line(s: &str) -> String {
    s.replace("\r\n", " ").replace(['\n', '\r'], " ")
}

/// The longest run of `c` in `s`.
fn longest_run(s: &str, c: char) -> usize {
    let (mut best, mut run) = (0, 0);
    for x in s.chars() {
        run = if x == c { run + 1 } else { 0 };
        best = best.max(run);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

    /// The text of a document's inline content, as a reader sees it.
    fn rendered(md: &str) -> String {
        Parser::new_ext(md, Options::ENABLE_TABLES)
            .filter_map(|e| match e {
                Event::Text(t) | Event::Code(t) => Some(t.to_string()),
                Event::SoftBreak => Some(" ".into()),
                _ => None,
            })
            .collect()
    }

    /// Whether a document has nothing but paragraphs, text and code spans.
    fn only_plain(md: &str) -> bool {
        Parser::new_ext(md, Options::ENABLE_TABLES).all(|e| {
            matches!(
                e,
                Event::Text(_)
                    | Event::Code(_)
                    | Event::SoftBreak
                    | Event::Start(Tag::Paragraph)
                    | Event::End(TagEnd::Paragraph)
            )
        })
    }

    const NASTY: &[&str] = &[
        "a *b* _c_ **d** __e__",
        "`code` ``x`` ```",
        "<script>alert(1)</script> <b>x</b>",
        "[link](http://example.org) ![img](x.png)",
        "a | b || c \\| d \\",
        "~~strike~~ &amp; &#42; $x$ @team #12",
        "- item",
        "---",
        "***",
        "___",
        "snake_case_words, _x_, a_b_, _c and __d__",
        "x -> y >> z",
        "0.1.0 and 1.2",
        "12.",
        "+ item",
        "= underline",
        "12. item",
        "7) item",
        "# heading",
        "> quote",
        "line\nbreak\r\nand\rmore",
        "trailing backslash \\",
        "    indented code",
    ];

    #[test]
    fn escaped_text_renders_as_itself_and_nothing_else() {
        for s in NASTY {
            let md = text(s);
            assert!(only_plain(&md), "{s:?} -> {md:?}");
            assert_eq!(rendered(&md).trim(), one_line(s).trim(), "{s:?} -> {md:?}");
        }
    }

    #[test]
    fn code_spans_hold_any_backticks() {
        for s in ["plain", "`", "a`b", "``x``", "```", "` a `", "x ````y"] {
            let md = code(s);
            let events: Vec<Event> = Parser::new(&md).collect();
            let codes: Vec<String> = events
                .iter()
                .filter_map(|e| match e {
                    Event::Code(c) => Some(c.to_string()),
                    _ => None,
                })
                .collect();
            assert_eq!(codes, vec![s.to_string()], "{s:?} -> {md:?}: {events:?}");
        }
        assert_eq!(code(""), "");
    }

    #[test]
    fn table_cells_hold_pipes_and_backslashes() {
        let md = table(
            &["a|b", "c"],
            &[
                vec!["x | y".into(), "p\\|q".into()],
                vec!["-".into(), "`|` *".into()],
            ],
        );
        let mut cells: Vec<String> = Vec::new();
        let mut cell = None::<String>;
        let mut columns = 0;
        for e in Parser::new_ext(&md, Options::ENABLE_TABLES) {
            match e {
                Event::Start(Tag::Table(a)) => columns = a.len(),
                Event::Start(Tag::TableCell) => cell = Some(String::new()),
                Event::End(TagEnd::TableCell) => cells.extend(cell.take()),
                Event::Text(t) | Event::Code(t) => {
                    if let Some(c) = cell.as_mut() {
                        c.push_str(&t);
                    }
                }
                Event::Start(Tag::Paragraph | Tag::TableHead | Tag::TableRow)
                | Event::End(TagEnd::Paragraph | TagEnd::TableHead | TagEnd::TableRow)
                | Event::End(TagEnd::Table) => {}
                other => panic!("{other:?} in {md}"),
            }
        }
        assert_eq!(columns, 2, "{md}");
        assert_eq!(cells, ["a|b", "c", "x | y", "p\\|q", "-", "`|` *"], "{md}");
    }
}
