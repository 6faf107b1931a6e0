//! A small shell-word tokenizer, enough to read back the command lines
//! bgswap builds (`transport::command`, `engine::commands`): single quotes
//! (with `'\''` for a quote), double quotes (their content kept as written,
//! `\"`, `\\`, `\$` and `` \` `` unescaped), backslash escapes, and `;` as a
//! word of its own. `$(…)` and operators are kept as plain text: the
//! interpreter recognises a compound command by rebuilding it with the very
//! builder that made it and comparing the strings, so this only has to find
//! the words, not understand the shell.

/// The words of `line`, or None if a quote is not closed.
pub fn words(line: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    // A quoted empty word ('') is still a word.
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            ';' => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
                out.push(";".to_string());
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return None,
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.peek().copied() {
                            Some(n @ ('"' | '\\' | '$' | '`')) => {
                                chars.next();
                                cur.push(n);
                            }
                            _ => cur.push('\\'),
                        },
                        Some(c) => cur.push(c),
                        None => return None,
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(n) => cur.push(n),
                    None => cur.push('\\'),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::command::line;

    #[test]
    fn words_of_quoted_lines() {
        let nasty = ["a b", "it's", "\"q\"", "$(x)", "", "-e", "é", "a\\b"];
        assert_eq!(words(&line(&nasty)).expect("closed"), nasty);
        assert_eq!(
            words("a; b 'c;d' \"e f\"").expect("closed"),
            ["a", ";", "b", "c;d", "e f"]
        );
        assert_eq!(
            words("printf '%s %s\\n' u \"$(systemctl is-active u)\"").expect("closed"),
            ["printf", "%s %s\\n", "u", "$(systemctl is-active u)"]
        );
        assert_eq!(words("'open"), None);
        assert_eq!(words("\"a\\\"b\"").expect("closed"), ["a\"b"]);
    }
}
