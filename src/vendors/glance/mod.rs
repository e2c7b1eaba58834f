//! The Glance adapter: legacy Partner User API (`/PAPI/NewUser.asp`, `/PAPI/ShowUsers.asp`).

pub mod account;
pub mod adapter;
pub mod fields;
pub mod request;
pub mod response;
pub mod sandbox;
mod xml;

pub use account::{from_settings, Account};
pub use adapter::{build, Adapter};
pub use fields::{validate, GlanceAddress, NewUser, PartnerUserId, Rules};
