"""Golden person records: survivorship, stable person ids, person_source_link."""
