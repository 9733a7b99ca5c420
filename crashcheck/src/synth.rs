//! synth (todo)
