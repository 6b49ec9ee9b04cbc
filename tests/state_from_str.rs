//! `State` parses from the names it prints, so an admin endpoint's `?state=open` needs no match.

use breaker::State;

#[test]
fn every_state_parses_from_its_own_name() {
    for state in [
        State::Closed,
        State::Open,
        State::HalfOpen,
        State::ForcedOpen,
        State::Disabled,
        State::MetricsOnly,
    ] {
        assert_eq!(state.as_str().parse::<State>(), Ok(state));
        assert_eq!(state.to_string().to_uppercase().parse::<State>(), Ok(state));
    }
    assert_eq!("half-open".parse::<State>(), Ok(State::HalfOpen));
}

#[test]
fn other_strings_are_errors_listing_the_names() {
    for bad in ["", "opened", "half open", "closed ", "öpen"] {
        let err = bad.parse::<State>().unwrap_err();
        assert!(
            err.to_string()
                .contains("expected one of closed, open, half_open"),
            "{bad:?}: {err}"
        );
    }
}
