pub mod plan;
pub mod render;
