//! Predict, then run: every chapter poses one to three questions before an experiment and answers
//! each after the experiment's output, and an answer is only as good as the finding it cites.
//!
//! The markup, in `book/CHAPTER.md` (plain HTML that mdBook 0.4 passes through, with Markdown in
//! between; `book/theme/questions.css` styles it and prints answers open):
//!
//! ```text
//! <div class="question" id="ID">
//!
//! **Predict.** The question?
//!
//! </div>
//!
//! ```console
//! <!-- cmdrun -0 cargo run -q --bin NAME -- ARGS -->
//! ```
//!
//! <details class="answer" data-question="ID" data-finding="CLAIM" data-expect="confirmed">
//! <summary>Answer: the question, in short</summary>
//!
//! The answer, citing *CLAIM*.
//!
//! </details>
//! ```
//!
//! For each question this test checks the form (one answer per question, a real `<summary>` that
//! says what it answers, the answer right after the output of the directive(s) between them), runs
//! those directives as the book build does (through the shim, sharing the test run's one run of
//! each program), and fails if the cited claim is not among their findings, or it was REFUTED, or
//! the answer expects another verdict than the run gave. A finding `not checked` on this machine
//! leaves its answer unverified: the test says so and passes, and the answer must say what a
//! reader sees then (it names `not checked`) wherever an accepted snapshot shows that verdict.

mod support;

use regex::Regex;
use std::path::Path;
use std::process::{Command, Stdio};
use vmbook::book::{Directive, Finding, Verdict};

/// One question and its answer, as found in a chapter.
#[derive(Debug)]
struct Question {
    id: String,
    /// 0-based line indices in the chapter's Markdown.
    asked_at: usize,
    answered_at: Option<usize>,
    text: String,
    summary: String,
    finding: String,
    expect: String,
    answer: String,
}

#[test]
fn every_answer_agrees_with_the_finding_it_cites() {
    let root = support::root();
    let pages = vmbook::book::summary(&root).expect("book/SUMMARY.md");
    let all = vmbook::book::directives(&root).expect("the book's directives");
    let mut problems = Vec::new();
    let mut unverified = Vec::new();
    let mut verified = 0;
    let mut chapters_with_questions = 0;
    for page in &pages {
        let directives: Vec<&Directive> = all.iter().filter(|d| d.file == page.file).collect();
        if directives.is_empty() {
            continue;
        }
        let text = std::fs::read_to_string(root.join(&page.file)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let (questions, form_problems) = questions_in(&lines);
        let place = |line: usize| format!("{}:{}", page.file.display(), line + 1);
        problems.extend(
            form_problems
                .into_iter()
                .map(|p| format!("{}: {p}", page.file.display())),
        );

        // Run the chapter's directives that some question depends on, once each.
        let mut outputs: Vec<Option<Result<Vec<Finding>, String>>> = vec![None; directives.len()];
        let mut chapter_findings = 0;
        for q in &questions {
            let Some(answered_at) = q.answered_at else {
                continue;
            };
            let at = place(q.asked_at);
            let between: Vec<usize> = (0..directives.len())
                .filter(|&i| {
                    let line = directives[i].line - 1;
                    q.asked_at < line && line < answered_at
                })
                .collect();
            let Some(&last) = between.last() else {
                problems.push(format!(
                    "{at}: question `{}` is answered before any experiment runs: put the answer \
                     after the output of a directive",
                    q.id
                ));
                continue;
            };
            // Right after that output: only its fence, blank lines and figures in between.
            let stray = (directives[last].line..answered_at).find(|&i| {
                let l = lines[i].trim();
                !(l.is_empty() || l.starts_with("```") || l.starts_with("!["))
            });
            if let Some(i) = stray {
                problems.push(format!(
                    "{}: the answer to `{}` must follow the output of {} directly, not after {:?}",
                    place(answered_at),
                    q.id,
                    directives[last].location(),
                    lines[i]
                ));
            }
            let mut cited = None;
            let mut failures = Vec::new();
            for &i in &between {
                let output = outputs[i].get_or_insert_with(|| run(&root, directives[i]));
                match output {
                    Ok(findings) => {
                        if let Some(f) = findings.iter().find(|f| f.claim == q.finding) {
                            cited = Some((f.clone(), directives[i].location()));
                        }
                    }
                    Err(why) => failures.push(format!("{}: {why}", directives[i].location())),
                }
            }
            if !failures.is_empty() {
                problems.push(format!(
                    "{at}: `{}`: the experiment failed: {}",
                    q.id,
                    failures.join("; ")
                ));
                continue;
            }
            let Some((finding, location)) = cited else {
                problems.push(format!(
                    "{at}: the answer to `{}` cites the finding `{}`, which no directive between \
                     the question and its answer printed (claims are quoted exactly as the \
                     program prints them after `finding: `)",
                    q.id, q.finding
                ));
                continue;
            };
            chapter_findings += 1;
            if q.expect != Verdict::Confirmed.printed() {
                problems.push(format!(
                    "{at}: the answer to `{}` expects `{}`: an answer states what a confirmed \
                     finding shows (data-expect=\"confirmed\")",
                    q.id, q.expect
                ));
                continue;
            }
            match finding.verdict {
                Verdict::Confirmed => verified += 1,
                Verdict::Refuted => problems.push(format!(
                    "{at}: the answer to `{}` says the opposite of this run: {location} printed \
                     `{}` — REFUTED ({})",
                    q.id, finding.claim, finding.evidence
                )),
                Verdict::NotChecked => unverified.push(format!(
                    "{at}: `{}` not verified on this machine: {location} did not check `{}` ({})",
                    q.id, finding.claim, finding.evidence
                )),
            }
            if may_go_unchecked(&root, &directives[last].chapter(), &q.finding)
                && !q.answer.contains("not checked")
            {
                problems.push(format!(
                    "{at}: `{}` cites a finding that some accepted configuration reports as `not \
                     checked`: the answer must say so (name `not checked` and when)",
                    q.id
                ));
            }
            if !q.text.contains('?') {
                problems.push(format!("{at}: question `{}` asks nothing (no `?`)", q.id));
            }
            if q.summary.len() <= "Answer: ".len() || !q.summary.starts_with("Answer: ") {
                problems.push(format!(
                    "{at}: the <summary> of `{}` must say in words what it answers \
                     (`Answer: ...`), not {:?}",
                    q.id, q.summary
                ));
            }
        }
        // A chapter whose experiments state findings (as accepted) poses questions about them.
        let findings_printed = support::directives()
            .iter()
            .filter(|d| d.file == page.file && d.parsed.is_ok())
            .any(|d| {
                let snapshot = root.join(format!("tests/snapshots/{}.snap", d.snapshot_name()));
                std::fs::read_to_string(snapshot).is_ok_and(|s| s.contains("\nfinding: "))
            });
        if findings_printed && !(1..=3).contains(&questions.len()) {
            problems.push(format!(
                "{}: {} questions; a chapter poses one to three",
                page.file.display(),
                questions.len()
            ));
        }
        if !questions.is_empty() {
            chapters_with_questions += 1;
            println!(
                "{}: {} questions, {chapter_findings} findings cited",
                page.file.display(),
                questions.len()
            );
        }
    }
    for line in &unverified {
        println!("{line}");
    }
    println!(
        "{verified} answers verified, {} not verified on this machine, in {chapters_with_questions} chapters",
        unverified.len()
    );
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
    assert!(chapters_with_questions > 0, "no question found in the book");
}

/// The questions of one chapter, and what is wrong with their form.
fn questions_in(lines: &[&str]) -> (Vec<Question>, Vec<String>) {
    let question = Regex::new(r#"^<div class="question" id="([a-z0-9-]+)">$"#).unwrap();
    let answer = Regex::new(
        r#"^<details class="answer" data-question="([^"]*)" data-finding="([^"]*)" data-expect="([^"]*)">$"#,
    )
    .unwrap();
    let summary = Regex::new(r"^<summary>(.*)</summary>$").unwrap();
    let mut questions: Vec<Question> = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(caps) = question.captures(line) {
            let end = (i..lines.len()).find(|&j| lines[j] == "</div>");
            let text = end.map_or(String::new(), |end| lines[i + 1..end].join(" "));
            if questions.iter().any(|q| q.id == caps[1]) {
                problems.push(format!(
                    "line {}: question id `{}` used twice",
                    i + 1,
                    &caps[1]
                ));
            }
            questions.push(Question {
                id: caps[1].to_string(),
                asked_at: i,
                answered_at: None,
                text,
                summary: String::new(),
                finding: String::new(),
                expect: String::new(),
                answer: String::new(),
            });
        } else if let Some(caps) = answer.captures(line) {
            let Some(q) = questions.iter_mut().find(|q| q.id == caps[1]) else {
                problems.push(format!(
                    "line {}: an answer to `{}`, which no question before it asks",
                    i + 1,
                    &caps[1]
                ));
                continue;
            };
            if q.answered_at.is_some() {
                problems.push(format!("line {}: `{}` answered twice", i + 1, q.id));
                continue;
            }
            q.answered_at = Some(i);
            q.finding = unescape(&caps[2]);
            q.expect = unescape(&caps[3]);
            q.summary = lines
                .get(i + 1)
                .and_then(|l| summary.captures(l))
                .map_or(String::new(), |c| unescape(&c[1]));
            let end = (i..lines.len()).find(|&j| lines[j] == "</details>");
            match end {
                Some(end) => q.answer = lines[i + 2..end].join(" "),
                None => problems.push(format!("line {}: <details> never closed", i + 1)),
            }
        } else if line.contains("class=\"question\"") || line.contains("class=\"answer\"") {
            problems.push(format!(
                "line {}: a question or answer not of the form tests/questions.rs reads: {line}",
                i + 1
            ));
        }
    }
    for q in &questions {
        if q.answered_at.is_none() {
            problems.push(format!(
                "line {}: question `{}` has no answer",
                q.asked_at + 1,
                q.id
            ));
        }
    }
    (questions, problems)
}

/// An attribute value as the browser reads it.
fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Runs one directive as the book build does (`sh -c` in the chapter's directory, through the
/// shim: the binaries of this test run, each program once per run), and returns its findings.
fn run(root: &Path, directive: &Directive) -> Result<Vec<Finding>, String> {
    let command = directive.command()?;
    let output = Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(root.join(directive.file.parent().unwrap()))
        .envs(support::shim_environment())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("sh -c '{command}': {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    vmbook::book::findings(&String::from_utf8_lossy(&output.stdout))
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|line| format!("a finding line of no known form: {line}"))
}

/// Whether an accepted snapshot of this chapter (the reference or a `NAME@TAGS` variant) reports
/// `claim` as not checked: some reader's machine will.
fn may_go_unchecked(root: &Path, chapter: &str, claim: &str) -> bool {
    let line = format!("finding: {claim} — {} (", Verdict::NotChecked.printed());
    std::fs::read_dir(root.join("tests/snapshots"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{chapter}__"))
        })
        .any(|e| {
            std::fs::read_to_string(e.path())
                .is_ok_and(|text| text.lines().any(|l| l.starts_with(&line)))
        })
}
