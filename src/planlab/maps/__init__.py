"""nuPlan-layout GeoPackage maps: the ``MapAPI`` protocol, the reader (pyogrio + STRtree, lane graph) and the writer."""
