//! Fuzzy ranking of user and group names for the quick switcher.

use crate::conv_key::ConvKey;
use nucleo_matcher::pattern::{CaseMatching, Normalization, Pattern};
use nucleo_matcher::{Config, Matcher};

/// Names matching `query`, best first; all of them, in the given order, for an empty query.
/// Only known names: the contact list learns of new accounts as they register.
pub fn rank<'a>(query: &str, names: impl IntoIterator<Item = &'a ConvKey>) -> Vec<ConvKey> {
    let names: Vec<&ConvKey> = names.into_iter().collect();
    let query = query.trim();
    if query.is_empty() {
        return names.into_iter().cloned().collect();
    }
    let mut matcher = Matcher::new(Config::DEFAULT);
    let pattern = Pattern::parse(query, CaseMatching::Ignore, Normalization::Smart);
    let mut scored = pattern.match_list(names, &mut matcher);
    // Equal scores: the shorter name is the closer match ("bia" before "bianca").
    scored.sort_by_key(|(name, score)| (std::cmp::Reverse(*score), name.as_str().len()));
    scored.into_iter().map(|(name, _)| name.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(raw: &[&str]) -> Vec<ConvKey> {
        raw.iter().map(|n| ConvKey::parse(n).unwrap()).collect()
    }

    #[test]
    fn best_match_first_and_non_matches_dropped() {
        let all = names(&["bianca", "roberto", "bia", "carla"]);
        let ranked = rank("bia", &all);
        assert_eq!(ranked[0].as_str(), "bia");
        assert!(ranked.iter().any(|n| n.as_str() == "bianca"));
        assert!(!ranked.iter().any(|n| n.as_str() == "carla"));
    }

    #[test]
    fn empty_query_keeps_order_and_unknown_names_are_not_offered() {
        let all = names(&["zeca", "ana"]);
        assert_eq!(rank("", &all), all);
        assert_eq!(rank("newbie", &all), names(&[]));
    }
}
