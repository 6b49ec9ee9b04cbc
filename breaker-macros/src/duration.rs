//! Duration strings of the attribute (`"250ms"`, `"30s"`, `"1m30s"`), parsed at expansion time so
//! a typo is a compile error instead of a runtime surprise. The parser is the runtime's, so the
//! attribute and config files accept the same spellings.

pub(crate) use breaker_core::parse_duration as parse;
pub(crate) use breaker_core::DURATION_FORMAT as EXPECTED;
