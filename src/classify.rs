//! `roamlb classify`: what roamlb makes of each packet of a capture.
