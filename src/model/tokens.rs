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
        if whole_at(text, at, at + name.len()) {
            out.push(at);
        }
        from = at + name.chars().next().map_or(1, char::len_utf8);
    }
    out
}

/// Whether the occurrence of a name at `at..end` of `text` is a whole token:
/// neither neighbour continues it. `at` and `end` are char boundaries.
fn whole_at(text: &str, at: usize, end: usize) -> bool {
    let before_ok = text[..at].chars().next_back().is_none_or(|c| !continues(c));
    // A trailing dot ends a sentence or an absolute DNS name; it does not continue the name.
    let after_ok = match text[end..].chars().next() {
        None => true,
        Some('.') => !text[end + 1..].chars().next().is_some_and(continues),
        Some(c) => !continues(c),
    };
    before_ok && after_ok
}

/// A list of names to find in many texts. Masking looks for every role
/// token in every literal of a file: one search per name and literal made
/// that most of the time of masking a large file, so the names are indexed
/// by their first two bytes and each text is scanned once. Finds exactly
/// what [`find_all`] finds for each name.
#[derive(Debug, Clone)]
pub struct NameSet<'a> {
    names: Vec<&'a str>,
    /// Indexes into `names`, by the name's first byte.
    by_first: Vec<Vec<usize>>,
    /// Bit `b0 * 256 + b1` is set when a name starts with bytes `b0 b1`,
    /// or is the one byte `b0` (then every `b1` is set).
    pairs: Vec<u64>,
}

impl<'a> NameSet<'a> {
    /// Indexes `names`; empty names are never found, as in [`find_all`].
    pub fn new(names: &'a [String]) -> NameSet<'a> {
        let mut set = NameSet {
            names: Vec::new(),
            by_first: vec![Vec::new(); 256],
            pairs: vec![0; 1024],
        };
        for n in names.iter().filter(|n| !n.is_empty()) {
            let b = n.as_bytes();
            let k = set.names.len();
            set.names.push(n);
            set.by_first[usize::from(b[0])].push(k);
            match b.get(1) {
                Some(&b1) => set.set_pair(b[0], b1),
                None => (0..=255).for_each(|b1| set.set_pair(b[0], b1)),
            }
        }
        set
    }

    fn set_pair(&mut self, b0: u8, b1: u8) {
        let bit = usize::from(b0) * 256 + usize::from(b1);
        self.pairs[bit / 64] |= 1 << (bit % 64);
    }

    /// Whether some name may start at byte `i` of `b` (no false negatives).
    fn may_start(&self, b: &[u8], i: usize) -> bool {
        match b.get(i + 1) {
            Some(&b1) => {
                let bit = usize::from(b[i]) * 256 + usize::from(b1);
                self.pairs[bit / 64] & (1 << (bit % 64)) != 0
            }
            None => !self.by_first[usize::from(b[i])].is_empty(),
        }
    }

    /// Every whole-token occurrence of every name in `text`, as byte ranges,
    /// by position (names starting at one position in the list's order).
    pub fn find_all(&self, text: &str) -> Vec<std::ops::Range<usize>> {
        let b = text.as_bytes();
        let mut out = Vec::new();
        for i in 0..b.len() {
            // A name starts with a whole character, so it can only match at
            // a char boundary; checking it keeps the slicing below sound.
            if !self.may_start(b, i) || !text.is_char_boundary(i) {
                continue;
            }
            for &k in &self.by_first[usize::from(b[i])] {
                let name = self.names[k];
                if b[i..].starts_with(name.as_bytes()) && whole_at(text, i, i + name.len()) {
                    out.push(i..i + name.len());
                }
            }
        }
        out
    }
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

    /// A small generator (no dependency): xorshift.
    fn next(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    #[test]
    fn a_name_set_finds_what_find_all_finds() {
        // Texts and names from a small alphabet, so that names overlap,
        // repeat, touch each other and sit at either end; with multi-byte
        // characters and one-byte names.
        let alphabet = ["a", "b", "-", ".", " ", "é", "ab", "a.b", "/", "x1", "ü-"];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let pick = |n: usize, seed: &mut u64| -> String {
            (0..n)
                .map(|_| alphabet[(next(seed) % alphabet.len() as u64) as usize])
                .collect()
        };
        for _ in 0..3000 {
            let n_names = (next(&mut seed) % 5) as usize;
            let mut names: Vec<String> = (0..n_names)
                .map(|_| {
                    let len = 1 + (next(&mut seed) % 3) as usize;
                    pick(len, &mut seed)
                })
                .collect();
            if next(&mut seed) % 7 == 0 {
                names.push(String::new());
            }
            let len = (next(&mut seed) % 12) as usize;
            let text = pick(len, &mut seed);
            let mut want: Vec<(usize, usize)> = Vec::new();
            for (k, n) in names.iter().enumerate() {
                want.extend(find_all(&text, n).into_iter().map(|at| (at, k)));
            }
            want.sort();
            let set = NameSet::new(&names);
            let got: Vec<std::ops::Range<usize>> = set.find_all(&text);
            let want: Vec<std::ops::Range<usize>> = want
                .iter()
                .filter(|(_, k)| !names[*k].is_empty())
                .map(|&(at, k)| at..at + names[k].len())
                .collect();
            assert_eq!(got, want, "text {text:?}, names {names:?}");
        }
    }
}
