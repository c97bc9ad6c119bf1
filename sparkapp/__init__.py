"""The Spark application every job and the A/B analysis run in: conf/spark.yml's model
(`sparkapp.config`) and the SparkSession built from it (`sparkapp.session`)."""
