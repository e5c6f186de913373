//! The probe engine. TODO
