//! The Glance adapter: legacy Partner User API (`/PAPI/NewUser.asp`, `/PAPI/ShowUsers.asp`).

pub mod account;
pub mod fields;
pub mod request;
pub mod response;
mod xml;

pub use account::{from_settings, Account};
pub use fields::{validate, GlanceAddress, NewUser, PartnerUserId, Rules};
