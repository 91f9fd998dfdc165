"""Make the Spark model fixtures that `IMPORT MODEL … OPTIONS (format = 'spark')` is tested on.

Run with PySpark 3.5 and a JDK (`pip install pyspark==3.5.3`); the outputs are committed, so the
test command needs neither. From the repository root:

    python testdata/spark/make_models.py

Writes, under testdata/spark/:
  lr/                a bare LogisticRegressionModel on four numeric columns
  pipeline/          StringIndexer (two string columns, handleInvalid='keep' so NULL and unseen
                     categories score) → OneHotEncoder → VectorAssembler → LogisticRegression
  linear/            the same preprocessing → LinearRegression (elastic net)
  scaled/            a pipeline with a StandardScaler stage, which Augur refuses by name
  predictions.csv    the first 2,000 rows of testdata/transactions.csv without a NULL number
                     (Spark's VectorAssembler skips those; Augur leaves them unscored) and Spark's own
                     transform() output for each model (probability of class 1, prediction),
                     written with repr() so every digit survives
"""

import os
import shutil

from pyspark.ml import Pipeline
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import OneHotEncoder, StandardScaler, StringIndexer, VectorAssembler
from pyspark.ml.regression import LinearRegression
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
NUMBERS = ["transaction_amount", "age", "balance", "prior_defaults"]
STRINGS = ["transaction_type", "merchant_category"]


def save(model, name):
    path = os.path.join(HERE, name)
    shutil.rmtree(path, ignore_errors=True)
    model.write().save(path)
    # Checksums and markers are Hadoop's, not the model's: keep the fixture small.
    for dirpath, _, files in os.walk(path):
        for f in files:
            if f.endswith(".crc") or f == "_SUCCESS":
                os.remove(os.path.join(dirpath, f))


def main():
    spark = (SparkSession.builder.master("local[1]").appName("augur-fixtures")
             .config("spark.sql.session.timeZone", "UTC").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    df = spark.read.csv(os.path.join(ROOT, "testdata", "transactions.csv"), header=True,
                        inferSchema=True)
    df = df.withColumn("label", F.col("risk_score").cast("double"))

    indexer = StringIndexer(inputCols=STRINGS, outputCols=[c + "_idx" for c in STRINGS],
                            handleInvalid="keep")
    onehot = OneHotEncoder(inputCols=[c + "_idx" for c in STRINGS],
                           outputCols=[c + "_vec" for c in STRINGS])
    # 'skip': rows with a NULL number are left out, as Augur leaves them unscored.
    assemble = VectorAssembler(inputCols=NUMBERS + [c + "_vec" for c in STRINGS],
                               outputCol="features", handleInvalid="skip")

    numeric = VectorAssembler(inputCols=NUMBERS, outputCol="features",
                              handleInvalid="skip").transform(df)
    lr = LogisticRegression(labelCol="label", regParam=0.001, maxIter=200, tol=1e-10).fit(numeric)
    save(lr, "lr")

    pipeline = Pipeline(stages=[indexer, onehot, assemble,
                                LogisticRegression(labelCol="label", regParam=0.01,
                                                   maxIter=200, tol=1e-10)]).fit(df)
    save(pipeline, "pipeline")

    linear = Pipeline(stages=[indexer, onehot,
                              VectorAssembler(inputCols=["age", "balance", "prior_defaults"]
                                              + [c + "_vec" for c in STRINGS],
                                              outputCol="features", handleInvalid="skip"),
                              LinearRegression(labelCol="transaction_amount", regParam=0.1,
                                               elasticNetParam=0.5, maxIter=200, tol=1e-10)]
                      ).fit(df.na.drop(subset=["transaction_amount"]))
    save(linear, "linear")

    scaled = Pipeline(stages=[VectorAssembler(inputCols=NUMBERS, outputCol="raw",
                                              handleInvalid="skip"),
                              StandardScaler(inputCol="raw", outputCol="features"),
                              LogisticRegression(labelCol="label")]).fit(df)
    save(scaled, "scaled")

    # Rows Spark scores (no NULL number); NULL and unseen categories stay in.
    rows = df.na.drop(subset=NUMBERS).limit(2000).coalesce(1)
    p1 = F.udf(lambda v: repr(float(v[1])), "string")
    lr_out = lr.transform(VectorAssembler(inputCols=NUMBERS, outputCol="features")
                          .transform(rows))
    out = (lr_out.select(*[F.col(c) for c in rows.columns if c != "label"],
                         p1("probability").alias("p_lr"))
           .withColumn("_row", F.monotonically_increasing_id()))
    pipe_out = pipeline.transform(rows).select(p1("probability").alias("p_pipeline"),
                                               F.col("prediction").alias("class_pipeline"))
    lin_out = linear.transform(rows).select(
        F.udf(lambda v: repr(float(v)), "string")("prediction").alias("y_linear"))
    # Row order is kept by local[1] with one input partition; zip the outputs by position.
    a = out.toPandas()
    a["p_pipeline"] = pipe_out.toPandas()["p_pipeline"].values
    a["class_pipeline"] = pipe_out.toPandas()["class_pipeline"].astype(int).values
    a["y_linear"] = lin_out.toPandas()["y_linear"].values
    a = a.drop(columns=["_row"])
    a.to_csv(os.path.join(HERE, "predictions.csv"), index=False)
    spark.stop()


if __name__ == "__main__":
    main()
