package dev.flinkautotune.examples;

import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.DataStreamSink;
import org.apache.flink.streaming.api.functions.sink.DiscardingSink;

/** The job's sink before Flink 1.18 (no Sink V2 DiscardingSink): named like the V2 one's vertex. */
final class Discard {
    private Discard() {}

    static <T> DataStreamSink<T> into(DataStream<T> stream) {
        // A SinkFunction vertex is named "Sink: <name>".
        return stream.addSink(new DiscardingSink<>()).name("Writer");
    }
}
