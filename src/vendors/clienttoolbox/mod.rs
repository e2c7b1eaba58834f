//! ClientToolbox (`type=user_new` on `api.php`): field rules, account config, request building, answer reading, the adapter and its sandbox.
//!
//! The facts come from `vendors/clienttoolbox.md`; every behaviour that file marks
//! unconfirmed is an account setting (see [`account`]).

pub mod account;
pub mod adapter;
pub mod fields;
pub mod request;
pub mod response;
pub mod sandbox;

pub use account::{from_settings, Account};
pub use adapter::{build, Adapter};
pub use fields::{validate, AllowedCampaigns, ClientToolboxUserName, NewUser};
pub use sandbox::{router, Sandbox};
