//! Whole-token matching of names in text. Every prod name is a prefix of its
//! dev name (`rdm-redis` / `rdm-redis-dev`, `acc-data-repo` / `acc-data-repo-dev`),
//! so a substring search would see prod in every dev value. A name matches only
//! where neither neighbour could continue it.

/// Characters that can be part of a host name, group name or identifier.
fn continues(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Byte offsets where `name` occurs in `text` as a whole token.
pub fn find_all(text: &str, name: &str) -> Vec<usize> {
    let mut out = Vec::new();
    if name.is_empty() {
        return out;
    }
    let mut from = 0;
    while let Some(i) = text[from..].find(name) {
        let at = from + i;
        let end = at + name.len();
        let before_ok = text[..at].chars().next_back().is_none_or(|c| !continues(c));
        // A trailing dot ends a sentence or an absolute DNS name; it does not continue the name.
        let after_ok = match text[end..].chars().next() {
            None => true,
            Some('.') => !text[end + 1..].chars().next().is_some_and(continues),
            Some(c) => !continues(c),
        };
        if before_ok && after_ok {
            out.push(at);
        }
        from = at + name.chars().next().map_or(1, char::len_utf8);
    }
    out
}

/// Whether `name` occurs in `text` as a whole token.
pub fn names(text: &str, name: &str) -> bool {
    !find_all(text, name).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prod_name_is_not_found_in_dev_name() {
        assert!(names("redis://rdm-redis:6379/0", "rdm-redis"));
        assert!(!names("redis://rdm-redis-dev:6379/0", "rdm-redis"));
        assert!(names("redis://rdm-redis-dev:6379/0", "rdm-redis-dev"));
        assert!(names("(cn=acc-data-repo)(memberUid={u})", "acc-data-repo"));
        assert!(!names(
            "(cn=acc-data-repo-dev)(memberUid={u})",
            "acc-data-repo"
        ));
        assert!(!names(
            "['rdm-opensearch-d1-dev:9200']",
            "rdm-opensearch-d1"
        ));
        assert!(names("['rdm-opensearch-d1:9200']", "rdm-opensearch-d1"));
    }

    #[test]
    fn neighbours_that_continue_a_name() {
        assert!(!names("xrdm-redis", "rdm-redis"));
        assert!(!names("rdm-redis.internal", "rdm-redis"));
        assert!(names("rdm-redis.", "rdm-redis"));
        assert!(names("https://data.ae.ic.ac.uk/api", "data.ae.ic.ac.uk"));
        assert!(!names(
            "https://data-dev.ae.ic.ac.uk/api",
            "data.ae.ic.ac.uk"
        ));
        assert!(!names("https://olddata.ae.ic.ac.uk", "data.ae.ic.ac.uk"));
        assert_eq!(
            find_all("a rdm-redis rdm-redis-dev rdm-redis", "rdm-redis"),
            vec![2, 26]
        );
        assert!(!names("anything", ""));
    }
}
