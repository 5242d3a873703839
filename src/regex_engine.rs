//! The regex engine every rule regex runs on, regex-automata's engines chosen as the `regex` crate's meta engine
//! chooses them for our patterns: the lazy DFA answers whether a value matches; the groups (for a rule that
//! matched and uses them, and for rewrites) come from the one-pass DFA where the pattern allows it, else the
//! bounded backtracker on short values, else the PikeVM.
//!
//! What the meta engine adds to these served none of our patterns: condition patterns are anchored at both ends
//! and the module has no literal prefilters, so it always chose its core strategy, and its reverse NFA (built for
//! every regex) only served searches that report where a match starts without groups, which we never run.
//! Leaving it out took 78 KB off the module (docs/performance.md, "Module size"). Every engine
//! of regex-automata reports the same leftmost-first matches and groups, so what matches is unchanged;
//! `tests/regex_engine.rs` compares this type with the `regex` crate on many patterns and values.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use regex_automata::dfa::onepass;
use regex_automata::hybrid;
use regex_automata::nfa::thompson::{self, backtrack, pikevm, WhichCaptures, NFA};
use regex_automata::util::captures::Captures as Slots;
use regex_automata::util::iter::Searcher;
use regex_automata::util::primitives::NonMaxUsize;
use regex_automata::{Input, PatternID};
use regex_syntax::hir::Hir;

use crate::limits::REGEX_SIZE_LIMIT;

/// The lazy DFA's cache may grow to this many bytes before it is cleared (the `regex` crate's default).
const DFA_CACHE_CAPACITY: usize = 2 * (1 << 20);

/// A one-pass DFA past this many bytes is not built (the backtracker or the PikeVM find the groups then), as
/// in the `regex` crate.
const ONEPASS_SIZE_LIMIT: usize = 1 << 20;

/// A compiled regex: matches as the `regex` crate's `Regex` for the same pattern. Copies share the automata
/// and their caches (rule sets hold it in every condition, so it stays one pointer wide).
#[derive(Clone)]
pub struct Regex(Arc<Engines>);

struct Engines {
    pattern: Box<str>,
    /// `None` if the lazy DFA could not be built (its cache capacity is too small for the pattern): the PikeVM
    /// answers alone then.
    dfa: Option<hybrid::dfa::DFA>,
    /// Built only for a pattern anchored at its start that has groups (or a Unicode `\b`), and that is one-pass.
    onepass: Option<onepass::DFA>,
    backtrack: backtrack::BoundedBacktracker,
    pikevm: pikevm::PikeVM,
    /// The engines' scratch space, made at the first search (as the `regex` crate does: a regex that never
    /// runs costs no cache). A search holds the lock only while it runs; the module is single-threaded.
    caches: Mutex<Option<Caches>>,
}

struct Caches {
    dfa: Option<hybrid::dfa::Cache>,
    onepass: Option<onepass::Cache>,
    backtrack: backtrack::Cache,
    pikevm: pikevm::Cache,
}

/// The groups of one match: by index (0 is the whole match) or by name.
pub struct Captures<'h> {
    haystack: &'h str,
    slots: Slots,
}

impl Regex {
    /// Parses and builds `pattern` as the `regex` crate would (Unicode, leftmost-first, the rules' size limit).
    /// The error is the reason on one line.
    pub fn new(pattern: &str, ignore_case: bool) -> Result<Regex, String> {
        let ast = regex_syntax::ast::parse::Parser::new().parse(pattern).map_err(|e| one_line(&e.to_string()))?;
        let hir = regex_syntax::hir::translate::TranslatorBuilder::new()
            .case_insensitive(ignore_case)
            .build()
            .translate(pattern, &ast)
            .map_err(|e| one_line(&e.to_string()))?;
        Regex::from_hir(pattern, &hir)
    }

    /// Builds the regex `hir`, parsed from `pattern`. The error names the size limit it exceeds.
    pub fn from_hir(pattern: &str, hir: &Hir) -> Result<Regex, String> {
        let nfa = nfa(hir, REGEX_SIZE_LIMIT)?;
        let pikevm = pikevm::Builder::new().build_from_nfa(nfa.clone()).map_err(|e| e.to_string())?;
        let backtrack = backtrack::Builder::new().build_from_nfa(nfa.clone()).map_err(|e| e.to_string())?;
        let properties = hir.properties();
        let onepass = (nfa.is_always_start_anchored()
            && (properties.explicit_captures_len() > 0 || properties.look_set().contains_word_unicode()))
        .then(|| {
            let config = onepass::Config::new().size_limit(Some(ONEPASS_SIZE_LIMIT));
            onepass::Builder::new().configure(config).build_from_nfa(nfa.clone()).ok()
        })
        .flatten();
        let dfa = lazy_dfa(nfa);
        let engines = Engines { pattern: pattern.into(), dfa, onepass, backtrack, pikevm, caches: Mutex::new(None) };
        Ok(Regex(Arc::new(engines)))
    }

    /// Whether the pattern matches somewhere in `haystack` (anywhere: an anchored pattern says so itself).
    pub fn is_match(&self, haystack: &str) -> bool {
        let input = Input::new(haystack).earliest(true);
        self.0.with_caches(|engines, caches| {
            if let (Some(dfa), Some(cache)) = (&engines.dfa, caches.dfa.as_mut()) {
                // The lazy DFA gives up on a `\b` next to a non-ASCII byte, or when its cache keeps filling up;
                // the other engines then answer.
                if let Ok(found) = dfa.try_search_fwd(cache, &input) {
                    return found.is_some();
                }
            }
            engines.search_slots(caches, &input, &mut []).is_some()
        })
    }

    /// The leftmost-first match in `haystack` with its groups.
    pub fn captures<'h>(&self, haystack: &'h str) -> Option<Captures<'h>> {
        self.0.with_caches(|engines, caches| {
            let mut slots = engines.pikevm.create_captures();
            let found = engines.search_slots(caches, &Input::new(haystack), slots.slots_mut());
            slots.set_pattern(found);
            found.map(|_| Captures { haystack, slots })
        })
    }

    /// The number of groups, the whole match (group 0) included.
    pub fn captures_len(&self) -> usize {
        self.0.pikevm.get_nfa().group_info().group_len(regex_automata::PatternID::ZERO)
    }

    /// `haystack` with every match replaced by `replacement`, in which `$1`, `${1}`, `$name` and `${name}` stand
    /// for groups and `$$` for `$`; unchanged (and not copied) when nothing matches.
    pub fn replace_all<'h>(&self, haystack: &'h str, replacement: &str) -> Cow<'h, str> {
        self.0.with_caches(|engines, caches| {
            let mut slots = engines.pikevm.create_captures();
            // Successive matches as the `regex` crate's iterators find them (an empty match right after the
            // previous match is skipped).
            let mut searcher = Searcher::new(Input::new(haystack));
            let mut replaced: Option<String> = None;
            let mut last_end = 0;
            while let Some(found) = searcher.advance(|input| {
                let pattern = engines.search_slots(caches, input, slots.slots_mut());
                slots.set_pattern(pattern);
                Ok(slots.get_match())
            }) {
                let replaced = replaced.get_or_insert_with(|| String::with_capacity(haystack.len()));
                replaced.push_str(haystack.get(last_end..found.start()).unwrap_or_default());
                slots.interpolate_string_into(haystack, replacement, replaced);
                last_end = found.end();
            }
            match replaced {
                Some(mut replaced) => {
                    replaced.push_str(haystack.get(last_end..).unwrap_or_default());
                    Cow::Owned(replaced)
                }
                None => Cow::Borrowed(haystack),
            }
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0.pattern
    }
}

impl Engines {
    /// Runs `search` with the caches, made now if this is the first search.
    fn with_caches<R>(&self, search: impl FnOnce(&Engines, &mut Caches) -> R) -> R {
        let mut caches = self.caches.lock().unwrap_or_else(PoisonError::into_inner);
        let caches = caches.get_or_insert_with(|| Caches {
            dfa: self.dfa.as_ref().map(hybrid::dfa::Cache::new),
            onepass: self.onepass.as_ref().map(onepass::Cache::new),
            backtrack: backtrack::Cache::new(&self.backtrack),
            pikevm: pikevm::Cache::new(&self.pikevm),
        });
        search(self, caches)
    }

    /// The leftmost-first match in `input`, its groups written to `slots` (which may be empty), by the fastest
    /// engine that can give them: the `regex` crate's order.
    fn search_slots(
        &self,
        caches: &mut Caches,
        input: &Input<'_>,
        slots: &mut [Option<NonMaxUsize>],
    ) -> Option<PatternID> {
        if let (Some(onepass), Some(cache)) = (&self.onepass, caches.onepass.as_mut()) {
            if let Ok(found) = onepass.try_search_slots(cache, input, slots) {
                return found;
            }
        }
        if input.get_span().len() < self.backtrack.max_haystack_len() {
            if let Ok(found) = self.backtrack.try_search_slots(&mut caches.backtrack, input, slots) {
                return found;
            }
        }
        self.pikevm.search_slots(&mut caches.pikevm, input, slots)
    }
}

/// The NFA every engine runs, with every group, refused past `size_limit` bytes as the `regex` crate would.
pub(crate) fn nfa(hir: &Hir, size_limit: usize) -> Result<NFA, String> {
    thompson::Compiler::new()
        .configure(
            thompson::Config::new().nfa_size_limit(Some(size_limit)).shrink(false).which_captures(WhichCaptures::All),
        )
        .build_from_hir(hir)
        .map_err(|e| match e.size_limit() {
            Some(limit) => format!("compiles to more than {limit} bytes; simplify it"),
            None => e.to_string(),
        })
}

/// The lazy DFA as the `regex` crate configures it; `None` if the pattern needs more cache than it may have.
fn lazy_dfa(nfa: NFA) -> Option<hybrid::dfa::DFA> {
    let config = hybrid::dfa::Config::new()
        // A `\b` is handled while the haystack is ASCII; a search that meets other bytes gives up (and the
        // PikeVM answers) rather than the build failing.
        .unicode_word_boundary(true)
        .cache_capacity(DFA_CACHE_CAPACITY)
        .skip_cache_capacity_check(false)
        // Give up, for the PikeVM to answer, when the cache is cleared often without progress.
        .minimum_cache_clear_count(Some(3))
        .minimum_bytes_per_state(Some(10));
    hybrid::dfa::Builder::new().configure(config).build_from_nfa(nfa).ok()
}

impl<'h> Captures<'h> {
    /// Group `index`'s text, if it took part in the match.
    pub fn get(&self, index: usize) -> Option<&'h str> {
        self.slots.get_group(index).and_then(|span| self.haystack.get(span.range()))
    }

    /// The named group's text, if it took part in the match.
    pub fn name(&self, name: &str) -> Option<&'h str> {
        self.slots.get_group_by_name(name).and_then(|span| self.haystack.get(span.range()))
    }
}

impl fmt::Debug for Regex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Regex").field(&self.0.pattern).finish()
    }
}

/// regex-syntax explains an error over several lines with a caret; keep the reason itself.
pub fn one_line(text: &str) -> String {
    text.lines().find_map(|line| line.trim().strip_prefix("error: ")).map_or_else(|| text.to_owned(), str::to_owned)
}
