//! Unified diffs of two texts, as `diff -u` prints them.
//!
//! Lines are compared with their terminating `\n`, so a last line without one
//! differs from the same line with one and is marked
//! `\ No newline at end of file`. The edit script is a shortest one (Myers'
//! O(ND) algorithm) after trimming the common prefix and suffix; past
//! [`MAX_EDIT_DISTANCE`] differences the rest is shown as removed then added,
//! which keeps time and memory bounded on any input.

/// Lines of context around each change, as `diff -u`.
pub const CONTEXT: usize = 3;

/// Beyond this many inserted plus deleted lines the diff stops looking for a
/// shortest script (memory grows with its square).
pub const MAX_EDIT_DISTANCE: usize = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edit {
    Equal,
    Delete,
    Insert,
}

/// Split into lines, each keeping its `\n` (the last may lack it).
fn lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

/// The unified diff turning `old` into `new` for the file at `path`, with
/// `--- a/PATH` and `+++ b/PATH` headers; empty when the texts are equal.
pub fn unified_diff(path: &str, old: &str, new: &str) -> String {
    let relative = path.trim_start_matches('/');
    unified_diff_labelled(&format!("a/{relative}"), &format!("b/{relative}"), old, new)
}

/// As [`unified_diff`] with the header labels given in full.
pub fn unified_diff_labelled(old_label: &str, new_label: &str, old: &str, new: &str) -> String {
    let a = lines(old);
    let b = lines(new);
    let script = edit_script(&a, &b);
    if script.iter().all(|e| *e == Edit::Equal) {
        return String::new();
    }
    let mut out = format!("--- {old_label}\n+++ {new_label}\n");
    for hunk in hunks(&script) {
        write_hunk(&mut out, &script, hunk, &a, &b);
    }
    out
}

/// A hunk: a range of the edit script plus the line numbers where it starts.
#[derive(Debug, Clone, Copy)]
struct Hunk {
    start: usize,
    end: usize,
    old_line: usize,
    new_line: usize,
}

/// Group changes with [`CONTEXT`] lines around them; changes closer than
/// twice the context share a hunk.
fn hunks(script: &[Edit]) -> Vec<Hunk> {
    let changes: Vec<usize> = (0..script.len())
        .filter(|&i| script[i] != Edit::Equal)
        .collect();
    let mut out: Vec<Hunk> = Vec::new();
    let mut group_start = 0;
    for (n, &change) in changes.iter().enumerate() {
        let is_last = n + 1 == changes.len();
        let gap_ahead = changes.get(n + 1).map(|next| next - change - 1);
        if is_last || gap_ahead.is_some_and(|gap| gap > 2 * CONTEXT) {
            let first = changes[group_start];
            let start = first.saturating_sub(CONTEXT);
            let end = (change + 1 + CONTEXT).min(script.len());
            let (old_line, new_line) = positions(&script[..start]);
            out.push(Hunk {
                start,
                end,
                old_line,
                new_line,
            });
            group_start = n + 1;
        }
    }
    out
}

/// Old and new line counts consumed by a part of the script.
fn positions(script: &[Edit]) -> (usize, usize) {
    let old = script.iter().filter(|e| **e != Edit::Insert).count();
    let new = script.iter().filter(|e| **e != Edit::Delete).count();
    (old, new)
}

/// `diff -u` ranges: `N` for one line, `N,COUNT` otherwise, and the line
/// before the hunk when it has no lines on that side.
fn range(before: usize, count: usize) -> String {
    match count {
        0 => format!("{before},0"),
        1 => format!("{}", before + 1),
        _ => format!("{},{count}", before + 1),
    }
}

fn write_hunk(out: &mut String, script: &[Edit], hunk: Hunk, a: &[&str], b: &[&str]) {
    let part = &script[hunk.start..hunk.end];
    let (old_count, new_count) = positions(part);
    out.push_str(&format!(
        "@@ -{} +{} @@\n",
        range(hunk.old_line, old_count),
        range(hunk.new_line, new_count)
    ));
    let (mut x, mut y) = (hunk.old_line, hunk.new_line);
    for edit in part {
        let (prefix, line) = match edit {
            Edit::Equal => {
                x += 1;
                y += 1;
                (' ', a.get(x - 1))
            }
            Edit::Delete => {
                x += 1;
                ('-', a.get(x - 1))
            }
            Edit::Insert => {
                y += 1;
                ('+', b.get(y - 1))
            }
        };
        let line = line.copied().unwrap_or("");
        out.push(prefix);
        out.push_str(line);
        if !line.ends_with('\n') {
            out.push_str("\n\\ No newline at end of file\n");
        }
    }
}

/// A shortest edit script from `a` to `b` (bounded by [`MAX_EDIT_DISTANCE`]).
fn edit_script(a: &[&str], b: &[&str]) -> Vec<Edit> {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let middle = myers(&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let mut script = vec![Edit::Equal; prefix];
    script.extend(middle);
    script.extend(std::iter::repeat_n(Edit::Equal, suffix));
    script
}

/// Myers' greedy algorithm, keeping each round's frontier for the backtrack.
fn myers(a: &[&str], b: &[&str]) -> Vec<Edit> {
    let (n, m) = (a.len() as isize, b.len() as isize);
    let max = (n + m) as usize;
    let limit = max.min(MAX_EDIT_DISTANCE);
    let offset = max as isize + 1;
    let mut v = vec![0isize; 2 * max + 3];
    // frontiers[d][k + d] is the furthest x on diagonal k after round d.
    let mut frontiers: Vec<Vec<isize>> = Vec::new();
    for d in 0..=limit as isize {
        for k in (-d..=d).step_by(2) {
            let at = (k + offset) as usize;
            let mut x = if k == -d || (k != d && v[at - 1] < v[at + 1]) {
                v[at + 1]
            } else {
                v[at - 1] + 1
            };
            let mut y = x - k;
            while x < n && y < m && a[x as usize] == b[y as usize] {
                x += 1;
                y += 1;
            }
            v[at] = x;
            if x >= n && y >= m {
                frontiers.push(v[(offset - d) as usize..=(offset + d) as usize].to_vec());
                return backtrack(&frontiers, n, m);
            }
        }
        frontiers.push(v[(offset - d) as usize..=(offset + d) as usize].to_vec());
    }
    // Too different to search further: replace everything.
    let mut script = vec![Edit::Delete; a.len()];
    script.extend(std::iter::repeat_n(Edit::Insert, b.len()));
    script
}

fn backtrack(frontiers: &[Vec<isize>], n: isize, m: isize) -> Vec<Edit> {
    let furthest = |d: isize, k: isize| -> isize {
        frontiers
            .get(d as usize)
            .and_then(|f| f.get((k + d) as usize))
            .copied()
            .unwrap_or(0)
    };
    let mut script = Vec::new();
    let (mut x, mut y) = (n, m);
    for d in (1..frontiers.len() as isize).rev() {
        let k = x - y;
        let came_down = k == -d || (k != d && furthest(d - 1, k - 1) < furthest(d - 1, k + 1));
        let previous_k = if came_down { k + 1 } else { k - 1 };
        let previous_x = furthest(d - 1, previous_k);
        let previous_y = previous_x - previous_k;
        while x > previous_x && y > previous_y {
            script.push(Edit::Equal);
            x -= 1;
            y -= 1;
        }
        script.push(if came_down {
            Edit::Insert
        } else {
            Edit::Delete
        });
        x = previous_x;
        y = previous_y;
    }
    // Round 0 is a run of equal lines from the start.
    script.extend(std::iter::repeat_n(Edit::Equal, x.max(0) as usize));
    script.reverse();
    script
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Apply a unified diff to `old`; `None` when it does not apply.
    fn apply(old: &str, diff: &str) -> Option<String> {
        if diff.is_empty() {
            return Some(old.to_string());
        }
        let old_lines = lines(old);
        let mut out = String::new();
        let mut next_old = 0usize;
        let mut diff_lines = lines(diff).into_iter().skip(2).peekable();
        while let Some(header) = diff_lines.next() {
            let rest = header.strip_prefix("@@ -")?;
            let old_range = rest.split(' ').next()?;
            let old_start: usize = old_range.split(',').next()?.parse().ok()?;
            let old_count: usize = old_range
                .split(',')
                .nth(1)
                .map_or(Some(1), |c| c.parse().ok())?;
            let begin = if old_count == 0 {
                old_start
            } else {
                old_start - 1
            };
            while next_old < begin {
                out.push_str(old_lines.get(next_old)?);
                next_old += 1;
            }
            while let Some(line) = diff_lines.next_if(|l| !l.starts_with("@@")) {
                let mut text = line[1..].to_string();
                if diff_lines.peek() == Some(&"\\ No newline at end of file\n") {
                    diff_lines.next();
                    text.pop();
                }
                match line.as_bytes()[0] {
                    b' ' => {
                        if *old_lines.get(next_old)? != text {
                            return None;
                        }
                        next_old += 1;
                        out.push_str(&text);
                    }
                    b'-' => {
                        if *old_lines.get(next_old)? != text {
                            return None;
                        }
                        next_old += 1;
                    }
                    b'+' => out.push_str(&text),
                    _ => return None,
                }
            }
        }
        while next_old < old_lines.len() {
            out.push_str(old_lines[next_old]);
            next_old += 1;
        }
        Some(out)
    }

    #[test]
    fn diff_table() {
        let cases: &[(&str, &str, &str)] = &[
            ("", "", ""),
            ("a\nb\n", "a\nb\n", ""),
            ("", "a\n", "@@ -0,0 +1 @@\n+a\n"),
            ("a\n", "", "@@ -1 +0,0 @@\n-a\n"),
            ("a\nb\n", "", "@@ -1,2 +0,0 @@\n-a\n-b\n"),
            ("a\n", "b\n", "@@ -1 +1 @@\n-a\n+b\n"),
            (
                "a\n",
                "a",
                "@@ -1 +1 @@\n-a\n+a\n\\ No newline at end of file\n",
            ),
            (
                "a",
                "a\nb\n",
                "@@ -1 +1,2 @@\n-a\n\\ No newline at end of file\n+a\n+b\n",
            ),
            (
                "a\nb",
                "a\nc",
                "@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n",
            ),
            (
                "1\n2\n3\n4\n5\n6\n7\n8\n9\n",
                "1\n2\n3\n4\nX\n6\n7\n8\n9\n",
                "@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+X\n 6\n 7\n 8\n",
            ),
            // Two changes 7 lines apart: two hunks.
            (
                "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n",
                "X\n2\n3\n4\n5\n6\n7\n8\n9\nY\n11\n12\n",
                "@@ -1,4 +1,4 @@\n-1\n+X\n 2\n 3\n 4\n@@ -7,6 +7,6 @@\n 7\n 8\n 9\n-10\n+Y\n 11\n 12\n",
            ),
            // Two changes 6 lines apart: one hunk.
            (
                "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n",
                "X\n2\n3\n4\n5\n6\n7\nY\n9\n10\n",
                "@@ -1,10 +1,10 @@\n-1\n+X\n 2\n 3\n 4\n 5\n 6\n 7\n-8\n+Y\n 9\n 10\n",
            ),
            // A block replaced: removals first, as `diff -u`.
            (
                "x\na\nb\ny\n",
                "x\nc\nd\ny\n",
                "@@ -1,4 +1,4 @@\n x\n-a\n-b\n+c\n+d\n y\n",
            ),
            // The example of Myers' paper: the paper's script. GNU diff's
            // heuristics print another one as short (`-a -b c -a b +a b a +c`).
            (
                "a\nb\nc\na\nb\nb\na\n",
                "c\nb\na\nb\na\nc\n",
                "@@ -1,7 +1,6 @@\n-a\n-b\n c\n+b\n a\n b\n-b\n a\n+c\n",
            ),
            // Insert in the middle.
            (
                "a\nb\nc\nd\n",
                "a\nb\nnew\nc\nd\n",
                "@@ -1,4 +1,5 @@\n a\n b\n+new\n c\n d\n",
            ),
        ];
        for (old, new, body) in cases {
            let expected = if body.is_empty() {
                String::new()
            } else {
                format!("--- a/etc/app.conf\n+++ b/etc/app.conf\n{body}")
            };
            assert_eq!(
                unified_diff("/etc/app.conf", old, new),
                expected,
                "{old:?} -> {new:?}"
            );
            assert_eq!(
                apply(old, &expected).as_deref(),
                Some(*new),
                "apply {old:?}"
            );
        }
    }

    #[test]
    fn labels_are_given_in_full() {
        assert_eq!(
            unified_diff_labelled("old", "new", "x\n", "y\n"),
            "--- old\n+++ new\n@@ -1 +1 @@\n-x\n+y\n"
        );
    }

    #[test]
    fn too_different_texts_still_give_a_correct_diff() {
        let old: String = (0..3000).map(|i| format!("a{i}\n")).collect();
        let new: String = (0..3000).map(|i| format!("b{i}\n")).collect();
        let diff = unified_diff("/f", &old, &new);
        assert_eq!(apply(&old, &diff).as_deref(), Some(new.as_str()));
    }

    #[test]
    fn script_is_shortest() {
        let a = lines("a\nb\nc\na\nb\nb\na\n");
        let b = lines("c\nb\na\nb\na\nc\n");
        let script = edit_script(&a, &b);
        let changes = script.iter().filter(|e| **e != Edit::Equal).count();
        assert_eq!(changes, 5, "the classic Myers example has D = 5");
    }

    fn text() -> impl Strategy<Value = String> {
        // Few distinct lines so that texts share many of them.
        prop::collection::vec(
            prop::sample::select(vec!["a\n", "b\n", "c\n", "d\n", "e", ""]),
            0..30,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #[test]
        fn applying_the_diff_gives_the_new_text(old in text(), new in text()) {
            let diff = unified_diff("/f", &old, &new);
            prop_assert_eq!(diff.is_empty(), old == new);
            prop_assert_eq!(apply(&old, &diff), Some(new));
        }
    }
}
