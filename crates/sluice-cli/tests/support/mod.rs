//! Test support shared by this crate's integration tests.
#![allow(dead_code)] // each test binary uses a part

pub mod kafka;
pub mod postgres;
pub mod receiver;
pub mod run;
