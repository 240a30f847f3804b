package dev.flinkautotune;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.HashMap;
import java.util.Map;

import org.junit.Test;

public class FlinkConfigurationTest {
    private static Map<String, String> config(String... keyValues) {
        Map<String, String> map = new HashMap<>();
        for (int i = 0; i + 1 < keyValues.length; i += 2) {
            map.put(keyValues[i], keyValues[i + 1]);
        }
        return map;
    }

    @Test
    public void theRestAddressTheJobManagerListensOn() {
        assertThat(FlinkConfiguration.restUrl(config())).isEqualTo("http://127.0.0.1:8081");
        assertThat(FlinkConfiguration.restUrl(config("rest.port", "18081", "rest.bind-address", "127.0.0.1")))
                .isEqualTo("http://127.0.0.1:18081");
        assertThat(FlinkConfiguration.restUrl(config("rest.port", "8081", "rest.bind-address", "0.0.0.0")))
                .isEqualTo("http://127.0.0.1:8081");
        assertThat(FlinkConfiguration.restUrl(config("rest.bind-port", "9091", "rest.bind-address", "::1")))
                .isEqualTo("http://[::1]:9091");
        assertThat(FlinkConfiguration.restUrl(config("rest.port", "8082", "rest.bind-port", "50100-50200")))
                .isEqualTo("http://127.0.0.1:8082");
    }
}
